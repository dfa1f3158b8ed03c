-- bin/migrate: the versions already applied.
SELECT version FROM schema_migrations ORDER BY version;
