-- The claim the org's IdP puts group or role names in (set from a preset or by hand); the console
-- offers it as the claim of new role-mapping rules. NULL when the admin never said.
ALTER TABLE sso_connections ADD COLUMN groups_claim TEXT;
