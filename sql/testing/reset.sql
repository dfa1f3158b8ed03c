-- Used only by the test suite, before every test: empty every table the service writes, and
-- restart the identities. DELETE, not TRUNCATE: on tables of a few rows it costs a twentieth
-- (TRUNCATE makes new files for every table each time), and bin/test --fast runs it 2,000 times.
-- Children before parents; the statement triggers keep widget_blocks in step, and the last line
-- empties it as TRUNCATE's trigger would (whatever a test did to it by hand).
-- name: reset_all
DO $$
BEGIN
    -- After a test that loaded many rows (tests/test_list_indexes.py: a million widgets),
    -- TRUNCATE, whose cost does not grow with them.
    IF EXISTS (SELECT 1 FROM widgets OFFSET 10000) OR EXISTS (SELECT 1 FROM users OFFSET 10000)
    THEN
        TRUNCATE widgets, revoked_tokens, spent_refresh_tokens, sessions, users, login_failures,
            login_addresses, idempotency_keys, auth_rate_windows RESTART IDENTITY CASCADE;
    END IF;
END $$;
DELETE FROM auth_rate_windows;
DELETE FROM idempotency_keys;
DELETE FROM login_addresses;
DELETE FROM login_failures;
DELETE FROM spent_refresh_tokens;
DELETE FROM revoked_tokens;
DELETE FROM sessions;
DELETE FROM widgets;
DELETE FROM users;
DELETE FROM widget_blocks;
SELECT setval(pg_get_serial_sequence('users', 'id'), 1, false),
       setval(pg_get_serial_sequence('widgets', 'id'), 1, false),
       setval(pg_get_serial_sequence('login_failures', 'id'), 1, false);

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
