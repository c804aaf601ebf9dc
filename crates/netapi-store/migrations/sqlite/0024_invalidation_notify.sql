-- Instant invalidation (issue 18) is PostgreSQL's LISTEN/NOTIFY: SQLite serves one process,
-- whose caches are invalidated in memory as it writes. Nothing changes here; the migration
-- exists so that both backends count the same versions.
SELECT 1;
