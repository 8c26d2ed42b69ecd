-- Set when the org's rules deny a member (a rule save re-derived their outcome as `deny`): the
-- membership is kept (role, history, last claims) but cannot be used: no session of it passes
-- the verify endpoint or /api/v1/me, and its sessions were ended when it was set. Cleared when a
-- later rule save or a sign-in gives the member a role again. NULL: the member may sign in.
ALTER TABLE memberships ADD COLUMN denied_at BIGINT;
