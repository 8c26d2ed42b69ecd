-- Self-serve setup links (issue 15): an operator or org admin hands a customer's IT admin a
-- link that connects one org's IdP, with a test sign-in before activation. Keep
-- migrations/sqlite/0011_setup_links.sql in step (same shape, dialect only).

-- Only an HMAC of the link's token (under the service key) is kept: the URL is shown once.
-- `browser_hash` is the SHA-256 of the one browser bound to the link (a random cookie);
-- `browser_seen_at` its last request (an idle binding is freed, see sso/setup.rs).
-- The draft is what the customer entered (JSON, never the secret), the secret apart and
-- encrypted with the service key, bound to the link; `rules` a role-mapping spec (JSON);
-- `test_result` the last test sign-in's claims, role and warnings (JSON, never a token).
-- `client_key_enc`/`client_public_jwk`/`client_jwks_id`: the link's own private_key_jwt key
-- pair when the draft needs one the org's connection cannot lend (encrypted, bound to the
-- link); activation hands it, with its JWKS id, to the connection.
CREATE TABLE setup_links (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    token_hash        TEXT NOT NULL UNIQUE,
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    revoked_at        BIGINT,
    used_at           BIGINT,
    last_used_at      BIGINT,
    browser_hash      TEXT,
    browser_seen_at   BIGINT,
    draft             TEXT,
    draft_secret_enc  TEXT,
    rules             TEXT,
    test_result       TEXT,
    client_key_enc    TEXT,
    client_public_jwk TEXT,
    client_jwks_id    TEXT UNIQUE
);
CREATE INDEX setup_links_org ON setup_links(org_id, created_at);

-- Test sign-ins: a flow like login_flows but never enrolling anyone. Either a setup link's
-- draft (`setup_link_id`) or an org's live connection (`connection_id`, the console's button).
-- The console's result is kept on the row (`result`) until it expires.
CREATE TABLE test_flows (
    id             TEXT PRIMARY KEY,
    state_hash     TEXT NOT NULL UNIQUE,
    org_id         TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    setup_link_id  TEXT REFERENCES setup_links(id) ON DELETE CASCADE,
    connection_id  TEXT REFERENCES sso_connections(id) ON DELETE CASCADE,
    actor          TEXT NOT NULL,
    browser_hash   TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    -- Where the callback sends the browser back, encrypted (a setup page's URL holds its token).
    return_enc     TEXT NOT NULL,
    -- A link's test: what the draft was when it started (a save meanwhile fails the test).
    draft_fingerprint TEXT,
    used_at        BIGINT,
    result         TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX test_flows_expires ON test_flows(expires_at);
