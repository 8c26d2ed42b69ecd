-- Whether a sign-in asks the IdP's userinfo endpoint for the claims the ID token lacks (OIDC Core
-- §5.3; several providers put email, name and groups only there). On unless the admin turned it
-- off; rows from before this migration keep the default.
ALTER TABLE sso_connections ADD COLUMN userinfo BOOLEAN NOT NULL DEFAULT TRUE;
