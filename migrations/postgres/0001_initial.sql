-- orgsso schema. Times are unix seconds (BIGINT) and ids are text, so the same queries run on
-- SQLite and PostgreSQL; keep migrations/postgres in step with this file.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Email domains an org has claimed (set by the operator), for "Login with SSO" routing.
CREATE TABLE org_domains (
    domain      TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);
CREATE INDEX org_domains_org ON org_domains(org_id);

-- One row per connection ever made; at most one connected per org. A disconnected row keeps its
-- login_id so the retired login URL can answer 410 and is never handed out again.
CREATE TABLE sso_connections (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    login_id          TEXT NOT NULL UNIQUE,
    issuer            TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    client_secret_enc TEXT NOT NULL,
    scopes            TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('connected', 'disconnected')),
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    disconnected_at   BIGINT
);
CREATE UNIQUE INDEX sso_connections_one_connected ON sso_connections(org_id) WHERE status = 'connected';

CREATE TABLE role_mappings (
    org_id      TEXT PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    spec        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX users_email ON users(email);

-- The identity key: (issuer, subject). Never linked by email.
CREATE TABLE identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identities_user ON identities(user_id);

CREATE TABLE memberships (
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'developer', 'viewer')),
    source        TEXT NOT NULL,
    connection_id TEXT,
    last_login_at BIGINT,
    last_claims   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

-- tower-sessions records, with the user, org and connection lifted into columns so that
-- revoking every session of a connection is one statement.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    data          TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    user_id       TEXT,
    org_id        TEXT,
    connection_id TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX sessions_connection ON sessions(connection_id);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_org ON sessions(org_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- In-progress sign-ins. state and browser binding are stored hashed; rows are deleted when used.
CREATE TABLE login_flows (
    state_hash    TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES sso_connections(id) ON DELETE CASCADE,
    browser_hash  TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX login_flows_expires ON login_flows(expires_at);
CREATE INDEX login_flows_connection ON login_flows(connection_id);

CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    org_id      TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_events_org ON audit_events(org_id, id);
