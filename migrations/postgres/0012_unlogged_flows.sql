-- Sign-ins in progress are kept out of the write-ahead log. A flow lives ten minutes and is
-- used once; what matters is that its deletion is seen at once by every instance (single use),
-- which an unlogged table gives as any other. Its commits then need no WAL flush: the
-- callback's delete of its flow no longer waits for a disk sync, nor does a login start's
-- insert. After a crash of PostgreSQL the table is emptied and is not on standbys: the
-- sign-ins that were under way start again from the login link, and no state can be replayed.
-- Test sign-ins (setup links, the console's button) are the same kind of row.
ALTER TABLE login_flows SET UNLOGGED;
ALTER TABLE test_flows SET UNLOGGED;
