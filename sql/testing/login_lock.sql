-- name: count_login_failures
-- tests/test_login_lock.py: rows left after the bounded purge.
SELECT count(*) AS n FROM login_failures;
