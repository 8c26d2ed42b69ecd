-- SCIM 2.0 provisioning (issue 13): the org's directory (Okta, Entra ID) creates, updates and
-- removes members. Keep migrations/postgres/0009_scim.sql in step (same shape, dialect only).

-- Bearer tokens of an org's SCIM client. Only an HMAC of the token (under the service key) is
-- kept: the token is shown once, at creation.
CREATE TABLE scim_tokens (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX scim_tokens_org ON scim_tokens(org_id);

-- SCIM User resources. `document` is the resource's JSON (without id, meta and groups);
-- the columns beside it are what filters, uniqueness and linking read. Each is linked to the
-- orgsso user (and membership) made for it when it was provisioned.
CREATE TABLE scim_users (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_name      TEXT NOT NULL,
    -- userName lower-cased: userName is unique per org without regard to case (RFC 7643 §4.1.1).
    user_name_key  TEXT NOT NULL,
    external_id    TEXT,
    -- The work email lower-cased, for `emails[type eq "work"].value eq` and verified-domain linking.
    email_key      TEXT,
    active         BOOLEAN NOT NULL,
    document       TEXT NOT NULL,
    version        BIGINT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX scim_users_name ON scim_users(org_id, user_name_key);
CREATE UNIQUE INDEX scim_users_user ON scim_users(org_id, user_id);
CREATE INDEX scim_users_page ON scim_users(org_id, id);
CREATE INDEX scim_users_external ON scim_users(org_id, external_id);
CREATE INDEX scim_users_email ON scim_users(org_id, email_key);

CREATE TABLE scim_groups (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    display_name      TEXT NOT NULL,
    display_name_key  TEXT NOT NULL,
    external_id       TEXT,
    version           BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX scim_groups_page ON scim_groups(org_id, id);
CREATE INDEX scim_groups_name ON scim_groups(org_id, display_name_key);
CREATE INDEX scim_groups_external ON scim_groups(org_id, external_id);

CREATE TABLE scim_group_members (
    group_id      TEXT NOT NULL REFERENCES scim_groups(id) ON DELETE CASCADE,
    scim_user_id  TEXT NOT NULL REFERENCES scim_users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, scim_user_id)
);
CREATE INDEX scim_group_members_user ON scim_group_members(scim_user_id);

-- Set when the directory deactivated (`active: false`) or deleted the member: no session of
-- it passes, its sessions were ended, and its sign-ins are refused until the directory
-- reactivates it. Separate from `denied_at` (the rules' denial): a rule save or a sign-in
-- never clears it.
ALTER TABLE memberships ADD COLUMN deprovisioned_at BIGINT;

-- Which claim of the IdP's sign-in is matched to a SCIM user's externalId when an identity is
-- first seen (`sub`; `oid` for Entra ID).
ALTER TABLE sso_connections ADD COLUMN scim_link_claim TEXT NOT NULL DEFAULT 'sub';
