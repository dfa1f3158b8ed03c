-- name: auth_rate_take
-- A limited request's unit of its address's rate-limit window, in a statement of its own
-- (register, whose only other statement comes after the password hash; a request refused
-- before its statement): what is left (-1: refused) and the seconds to the window's reset.
SELECT remaining, reset_seconds
FROM auth_rate_take(%(address)s, %(rate_window)s, %(rate_quota)s);

-- name: purge_auth_rate_windows
-- bin/purge-revoked: every rate-limit window that has ended.
DELETE FROM auth_rate_windows
WHERE started_at < now() - make_interval(secs => %(rate_window)s);
