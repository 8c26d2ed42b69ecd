-- Who supplied a connection's or a jwk_url secret's URLs: an org admin's are fetched only
-- through the client pinned to public addresses, checked at every connection (DNS rebinding),
-- the operator's anywhere. Rows from before this migration: an org admin (audit actor
-- `user:…`) saved or updated the connection since it was created, or created the secret,
-- makes them org admins' rows; otherwise (including events the audit retention purged) the
-- operator's, as they were treated until now.
ALTER TABLE sso_connections ADD COLUMN public_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE jwt_secrets ADD COLUMN public_only BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE sso_connections SET public_only = TRUE WHERE EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.org_id = sso_connections.org_id
      AND a.action IN ('sso.connect', 'sso.update')
      AND a.actor LIKE 'user:%'
      AND a.created_at >= sso_connections.created_at
      AND (sso_connections.disconnected_at IS NULL OR a.created_at <= sso_connections.disconnected_at)
);
UPDATE jwt_secrets SET public_only = TRUE WHERE kind = 'jwk_url' AND EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.org_id = jwt_secrets.org_id
      AND a.action = 'jwt_secret.create'
      AND a.actor LIKE 'user:%'
      AND a.created_at = jwt_secrets.created_at
);
