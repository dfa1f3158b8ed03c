-- Catalog look-ups used only by the test suite (tests/test_migrations.py, test_localdb.py,
-- test_e2e.py): what a migration run left behind, and which server a URL reaches.

-- name: catalog_applied_versions
SELECT version FROM schema_migrations ORDER BY version;

-- name: catalog_table_exists
SELECT to_regclass(%(name)s::text) IS NOT NULL AS present;

-- name: catalog_public_tables
SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename;

-- name: catalog_public_indexes
SELECT indexname AS name, tablename AS table_name, indexdef AS definition
FROM pg_indexes
WHERE schemaname = 'public'
ORDER BY indexname;

-- name: catalog_foreign_keys
SELECT conname AS name, pg_get_constraintdef(oid) AS definition
FROM pg_constraint
WHERE contype = 'f' AND conrelid = to_regclass(%(table)s::text)
ORDER BY conname;

-- name: catalog_insert_user_strict
-- Like sql/queries insert_user but without ON CONFLICT: the unique index itself must refuse.
INSERT INTO users (public_id, email, password_hash, admin)
VALUES (gen_random_uuid(), %(email)s, 'not-a-hash', false);

-- name: catalog_database_exists
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = %(name)s::text) AS present;

-- name: catalog_server_identity
SELECT current_setting('data_directory') AS data_directory,
       pg_postmaster_start_time() AS started_at;
