-- bin/backup and bin/restore (widgetsvc/ops/backup.py, widgetsvc/ops/cluster/backup.py), run as the
-- superuser of the private cluster or of bin/cluster's leader.

-- name: archive_settings
-- Is WAL archiving on, and to the command bin/backup set? (archive_mode needs a restart.)
SELECT current_setting('archive_mode') AS archive_mode,
       current_setting('archive_command') AS archive_command;

-- name: archive_ddl
-- Turn WAL archiving on for the private cluster (kept in postgresql.auto.conf; the cluster is
-- then restarted once, as archive_mode wants).
SELECT format('ALTER SYSTEM SET archive_command = %%L', %(command)s::text) AS ddl
UNION ALL SELECT 'ALTER SYSTEM SET archive_mode = on';

-- name: in_recovery
-- After a restore: is the server still replaying WAL (not yet promoted)?
SELECT pg_is_in_recovery() AS in_recovery;

-- name: reset_ddl
-- bin/restore --cluster: the settings the restored server replayed with (its own port, the
-- recovery target ...) leave postgresql.auto.conf before Patroni takes the data over.
SELECT format('ALTER SYSTEM RESET %%I', name) AS ddl FROM unnest(%(names)s::text[]) AS name;

-- name: checkpoint
-- The reset written down before the server stops.
CHECKPOINT;

-- name: mark_commit
-- bin/restore, before it archives the current WAL: one committed transaction (an xid), so that
-- the archive holds a commit after the target time. Recovery stops at the first commit past
-- the target; without one it would end with "recovery ended before configured recovery
-- target was reached" when nothing was written since the target.
SELECT pg_current_xact_id()::text AS xid;
