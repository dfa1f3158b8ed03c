-- Used by scripts/failover.py and tests/test_cluster.py against a bin/cluster database.

-- name: cluster_widgets_present
-- Which of these widget names exist (the failover drill's acknowledged creates).
SELECT name FROM widgets WHERE name = ANY(%(names)s);

-- name: cluster_set_admin
-- Promote or demote a user (a demotion must be honoured by every instance at once).
UPDATE users SET admin = %(admin)s WHERE lower(email) = lower(%(email)s);
