-- PostgreSQL's 0012 keeps sign-ins in progress out of its write-ahead log (unlogged tables).
-- SQLite has no such tables, and its commits in WAL mode with synchronous=NORMAL do not wait
-- for a disk sync anyway: nothing to change, kept so that both databases number alike.
SELECT 1;
