-- Used only by tests/test_migrations.py: a long transaction in the way of a migration that
-- rewrites widgets (0007 needs ACCESS EXCLUSIVE; this ACCESS SHARE, held until rollback,
-- is enough to block it).

-- name: migration_locks_hold_widgets
LOCK TABLE widgets IN ACCESS SHARE MODE;

-- name: migration_locks_widgets_columns
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'public' AND table_name = 'widgets'
 ORDER BY column_name;
