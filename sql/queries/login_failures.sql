-- name: login_lock
-- One row when the e-mail has at least `failures` failed logins within the window (`skip` =
-- failures - 1): it is locked until the failures-th most recent one leaves the window.
SELECT greatest(1, ceil(extract(epoch FROM
           failed_at + make_interval(secs => %(window_seconds)s) - now())))::int AS retry_after
FROM login_failures
WHERE email_key = lower(%(email)s)
  AND failed_at > now() - make_interval(secs => %(window_seconds)s)
ORDER BY failed_at DESC
OFFSET %(skip)s
LIMIT 1;

-- name: record_login_failure
-- Records one failed login and, in the same statement, purges up to 100 failures that have
-- left the window, so the table stays small with a bounded cost per failure.
WITH purged AS (
    DELETE FROM login_failures
    WHERE id IN (
        SELECT id FROM login_failures
        WHERE failed_at < now() - make_interval(secs => %(window_seconds)s)
        ORDER BY failed_at
        LIMIT 100
    )
)
INSERT INTO login_failures (email_key) VALUES (lower(%(email)s));

-- name: reset_login_failures
-- A successful login resets the count.
DELETE FROM login_failures WHERE email_key = lower(%(email)s);

-- name: purge_login_failures
DELETE FROM login_failures WHERE failed_at < now() - make_interval(secs => %(window_seconds)s);
