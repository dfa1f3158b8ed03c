-- Used only by the test suite, between tests: empty every table the service writes.
-- name: reset_all
TRUNCATE widgets, revoked_tokens, spent_refresh_tokens, sessions, users, login_failures,
    login_addresses, idempotency_keys, auth_rate_windows
    RESTART IDENTITY CASCADE;

-- name: auth_delete_user_by_email
-- Tests of a token whose user no longer exists.
DELETE FROM users WHERE lower(email) = lower(%(email)s);

-- name: auth_set_admin_by_email
-- Tests that the database, not the token's admin claim, decides who is an admin.
UPDATE users SET admin = %(admin)s WHERE lower(email) = lower(%(email)s);

-- name: auth_revoked_tokens
-- Every revocation, oldest expiry first.
SELECT jti, expires_at FROM revoked_tokens ORDER BY expires_at, jti;

-- name: widgets_set_user_admin
-- tests/test_widgets_api.py: promote or demote a user after its token was issued.
UPDATE users SET admin = %(admin)s WHERE lower(email) = lower(%(email)s);

-- name: sessions_insert_for_user
-- tests/conftest.py: a live session with a chosen id for a user the tests created directly,
-- so that hand-forged tokens (which must name a live session in `sid`) can be valid.
INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
SELECT %(session_id)s::uuid, id, sha256(convert_to(%(session_id)s::text, 'UTF8')),
       now() + interval '1 day'
FROM users WHERE public_id = %(public_id)s;

-- name: idem_age_keys
-- tests/test_idempotency.py: move every kept Idempotency-Key outcome %(hours)s hours back.
UPDATE idempotency_keys SET created_at = created_at - make_interval(hours => %(hours)s);

-- name: idem_rows
-- tests/test_idempotency.py: the kept outcomes, oldest first.
SELECT scope, owner, key, status, name, etag, created_at FROM idempotency_keys
ORDER BY created_at, key;

-- name: idem_hold_lock
-- tests/test_idempotency.py: hold a key's advisory lock in the test's own transaction, as a
-- request still in flight does.
SELECT pg_advisory_xact_lock(%(lock_id)s) AS held;

-- name: rate_age_windows
-- tests/test_rate_limit_headers.py: move every rate-limit window %(seconds)s seconds back.
UPDATE auth_rate_windows SET started_at = started_at - make_interval(secs => %(seconds)s);

-- name: rate_windows
-- tests/test_rate_limit_headers.py: the rate-limit windows.
SELECT address, started_at, used FROM auth_rate_windows ORDER BY address;
