-- name: login_lock
-- POST /auth/login, before any hash: seconds until logins for this e-mail from this address
-- are allowed again, or NULL (see login_lock_retry_after, migration 0008); and, with a rate
-- limit (`rate_quota` > 0), the request's unit of its address's window taken (auth_rate_take,
-- migration 0015: what is left, -1 when refused, and the seconds to its reset).
SELECT login_lock_retry_after(%(email)s, %(address)s, %(window_seconds)s, %(address_skip)s,
                              %(account_skip)s, %(known_seconds)s) AS retry_after,
       rate.remaining AS rate_remaining, rate.reset_seconds AS rate_reset
FROM (SELECT) AS one
LEFT JOIN LATERAL (
    SELECT * FROM auth_rate_take(%(address)s, %(rate_window)s, %(rate_quota)s)
    WHERE %(rate_quota)s::int > 0
) AS rate ON true;

-- name: password_hash_and_lock
-- PUT /auth/password, before any hash: the caller's stored hash and, in the same statement,
-- the lock for the caller's e-mail and address (a wrong current password counts as a failed
-- login), and the request's unit of the rate limit as in login_lock. No row: the user is gone
-- (and no unit taken).
SELECT u.password_hash,
       login_lock_retry_after(u.email, %(address)s, %(window_seconds)s, %(address_skip)s,
                              %(account_skip)s, %(known_seconds)s) AS retry_after,
       rate.remaining AS rate_remaining, rate.reset_seconds AS rate_reset
FROM users AS u
LEFT JOIN LATERAL (
    SELECT * FROM auth_rate_take(%(address)s, %(rate_window)s, %(rate_quota)s)
    WHERE %(rate_quota)s::int > 0
) AS rate ON true
WHERE u.id = %(user_id)s;

-- name: record_login_failure
-- Records one failed login for the e-mail and address and, in the same statement, purges up
-- to 100 failures that have left the window, so the table stays small with a bounded cost per
-- failure.
WITH purged AS (
    DELETE FROM login_failures
    WHERE id IN (
        SELECT id FROM login_failures
        WHERE failed_at < now() - make_interval(secs => %(window_seconds)s)
        ORDER BY failed_at
        LIMIT 100
    )
)
INSERT INTO login_failures (email_key, address) VALUES (lower(%(email)s), %(address)s);

-- name: login_succeeded
-- A successful login, in one statement: the count of its e-mail and address is reset; the
-- address is remembered for the user (spared the per-account lock for `known_seconds`), at
-- most `keep_others` + 1 per user (the least recently used others are forgotten); and up to 100
-- remembered addresses older than `known_seconds` are purged, so the table stays bounded.
WITH reset AS (
    DELETE FROM login_failures
    WHERE email_key = lower(%(email)s) AND address = %(address)s
), remembered AS (
    INSERT INTO login_addresses (user_id, address) VALUES (%(user_id)s, %(address)s)
    ON CONFLICT (user_id, address) DO UPDATE SET last_success = now()
), over_cap AS (
    DELETE FROM login_addresses
    WHERE user_id = %(user_id)s AND address IN (
        SELECT address FROM login_addresses
        WHERE user_id = %(user_id)s AND address <> %(address)s
        ORDER BY last_success DESC
        OFFSET %(keep_others)s
    )
), purged AS (
    DELETE FROM login_addresses
    WHERE (user_id, address) IN (
        SELECT user_id, address FROM login_addresses
        WHERE last_success < now() - make_interval(secs => %(known_seconds)s)
        ORDER BY last_success
        LIMIT 100
    ) AND NOT (user_id = %(user_id)s AND address = %(address)s)
)
SELECT 1 AS done;

-- name: purge_login_failures
-- bin/purge-revoked: every failure that left the window and every remembered address older
-- than `known_seconds`.
WITH failures AS (
    DELETE FROM login_failures
    WHERE failed_at < now() - make_interval(secs => %(window_seconds)s)
    RETURNING 1
), addresses AS (
    DELETE FROM login_addresses
    WHERE last_success < now() - make_interval(secs => %(known_seconds)s)
    RETURNING 1
)
SELECT (SELECT count(*) FROM failures) AS failures,
       (SELECT count(*) FROM addresses) AS addresses;
