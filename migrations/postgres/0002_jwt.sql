-- JWT secrets per org, the service's own signing keys, and a stable, non-secret reference to each
-- session (a hash of its id) that tokens minted from it carry for revocation.

CREATE TABLE jwt_secrets (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('hs256', 'rs256', 'rs256_public', 'jwk_url')),
    -- hs256 secret or rs256 private key, encrypted with the service key; NULL for public kinds.
    private_enc  TEXT,
    -- derived or given public key PEM, or the JWK URL.
    public       TEXT,
    public_jwk   TEXT,
    kid          TEXT,
    audiences    TEXT NOT NULL,
    issuers      TEXT NOT NULL,
    is_primary   BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE UNIQUE INDEX jwt_secrets_one_primary ON jwt_secrets(org_id) WHERE is_primary;

-- retired_at NULL: the key that signs now. Retired keys stay published until tokens they
-- signed have expired.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    private_enc  TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys((retired_at IS NULL)) WHERE retired_at IS NULL;

ALTER TABLE sessions ADD COLUMN sid_hash TEXT;
CREATE UNIQUE INDEX sessions_sid_hash ON sessions(sid_hash);
