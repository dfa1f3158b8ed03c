-- Look-ups used only by tests/test_migration_rewrites.py: which migrations rewrite a table
-- (README "Migrations": such a migration locks the table for as long as the rewrite takes).

-- name: upgrade_table_files
-- A rewrite gives a table a new file: relfilenode changes (ALTER TABLE ... with a volatile
-- default, a column type change, VACUUM FULL, CLUSTER, TRUNCATE).
SELECT c.relname AS name, c.relfilenode AS file
FROM pg_class c
WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
ORDER BY c.relname;

-- name: upgrade_seed_rows
-- One user with one widget, in the columns of 0002: every later migration meets rows.
WITH owner AS (
    INSERT INTO users (public_id, email, password_hash)
    VALUES (gen_random_uuid(), %(email)s, 'not-a-hash')
    RETURNING id
)
INSERT INTO widgets (name, info_url, deadline, owner_id)
SELECT %(name)s, 'https://example.com', now() + interval '1 day', owner.id FROM owner;
