-- Token-endpoint client authentication per connection (issue 10).
-- token_auth_method: the admin's choice (client_secret_basic, client_secret_post or
-- private_key_jwt); NULL is automatic (chosen from discovery).
ALTER TABLE sso_connections ADD COLUMN token_auth_method TEXT;
-- Automatic mode only: the secret method the IdP accepted after refusing the other one.
ALTER TABLE sso_connections ADD COLUMN token_auth_learned TEXT;
-- private_key_jwt: the connection's own key pair. The private key is PKCS#8 PEM encrypted with the
-- service key (bound to the connection id); the public JWK is public; client_jwks_id names the URL
-- the public key set is published at (/sso/client-jwks/{client_jwks_id}). A connection with
-- private_key_jwt has no shared secret: client_secret_enc is '' then.
ALTER TABLE sso_connections ADD COLUMN client_key_enc TEXT;
ALTER TABLE sso_connections ADD COLUMN client_public_jwk TEXT;
ALTER TABLE sso_connections ADD COLUMN client_jwks_id TEXT;
CREATE UNIQUE INDEX sso_connections_client_jwks_id ON sso_connections(client_jwks_id);
