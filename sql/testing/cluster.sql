-- Used by scripts/failover.py and tests/test_cluster.py against a bin/cluster database.

-- name: cluster_widgets_present
-- Which of these widget names exist (the failover drill's acknowledged creates).
SELECT name FROM widgets WHERE name = ANY(%(names)s);

-- name: cluster_set_admin
-- Promote or demote a user (a demotion must be honoured by every instance at once).
UPDATE users SET admin = %(admin)s WHERE lower(email) = lower(%(email)s);

-- name: cluster_backends
-- scripts/cluster_cpu.py: the service role's backends on the leader, and what they wait for.
SELECT count(*) AS total,
       count(*) FILTER (WHERE state = 'active') AS active,
       coalesce(string_agg(wait_event_type || ':' || wait_event, ',')
                FILTER (WHERE state = 'active' AND wait_event IS NOT NULL), '') AS waits
FROM pg_stat_activity
WHERE usename = %(role)s AND pid <> pg_backend_pid();
