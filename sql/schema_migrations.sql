-- Bookkeeping for bin/migrate: one row per applied file in sql/migrations.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
