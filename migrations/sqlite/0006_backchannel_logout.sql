-- OpenID Connect Back-Channel Logout 1.0 (issue 11).
-- idp_sid: the `sid` claim of the ID token the session was started with (the IdP's session),
-- copied from the session record like user/org/connection, so a logout token's `sid` ends
-- exactly the sessions that IdP session started.
ALTER TABLE sessions ADD COLUMN idp_sid TEXT;
CREATE INDEX sessions_connection_idp_sid ON sessions(connection_id, idp_sid);
-- Logout tokens' `jti`s (hashed with their issuer), each accepted once while the token could
-- still be valid: the primary key makes a second insert a replay on every instance. Rows past
-- expires_at are purged with expired sessions.
CREATE TABLE logout_jtis (
    jti_hash    TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX logout_jtis_expires ON logout_jtis(expires_at);
