-- tests/test_backup.py: the backup drill.

-- name: backup_now
-- The moment T of the drill, on the server's clock, in bin/restore --time's format.
SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t;

-- name: backup_widget_names
SELECT name FROM widgets ORDER BY id;

-- name: backup_delete_all_widgets
-- The operator's mistake, typed in psql.
DELETE FROM widgets;
