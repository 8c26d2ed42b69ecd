-- Audit retention (audit.retention_days): the periodic purge deletes the oldest events first,
-- a batch at a time; this index finds them without scanning the table.
CREATE INDEX audit_events_created ON audit_events(created_at);
