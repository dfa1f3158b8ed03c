-- Bookkeeping for bin/migrate: one row per applied file in sql/migrations.
-- Run with psql -1 (one transaction); the advisory lock is the one sql/migrate.psql takes,
-- so two migrators on a fresh database do not race on CREATE TABLE.
SELECT pg_advisory_xact_lock(7205511);
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
