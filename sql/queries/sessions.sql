-- name: register_user
-- Register: the new user and its first session in one statement. Returns nothing when the
-- e-mail is taken (any case): the unique index decides.
WITH new_user AS (
    INSERT INTO users (public_id, email, password_hash, admin)
    VALUES (%(public_id)s, %(email)s, %(password_hash)s, false)
    ON CONFLICT DO NOTHING
    RETURNING id, public_id, email, admin, registered_on
), new_session AS (
    INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
    SELECT %(session_id)s, id, %(refresh_hash)s, now() + make_interval(secs => %(lifetime)s)
    FROM new_user
    RETURNING id
)
SELECT u.id, u.public_id, u.email, u.admin, u.registered_on
FROM new_user u, new_session;

-- name: start_session
-- Login: a session for a user who is (still) enabled, plus a bounded purge of expired
-- sessions. FOR SHARE makes a concurrent disable wait for this insert (or this insert wait
-- for the disable, and then find the user disabled): see disable_user.
WITH owner AS (
    SELECT id FROM users WHERE id = %(user_id)s AND NOT disabled FOR SHARE
), purged AS (
    DELETE FROM sessions
    WHERE id IN (SELECT id FROM sessions WHERE expires_at < now()
                 ORDER BY expires_at LIMIT 100)
)
INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
SELECT %(session_id)s, id, %(refresh_hash)s, now() + make_interval(secs => %(lifetime)s)
FROM owner
RETURNING id;

-- name: rotate_refresh_token
-- Refresh: the session whose current refresh token hashes to %(hash)s, alive and of an
-- enabled user, gets %(new_hash)s and a new expiry; the old hash is kept as spent (with its
-- own expiry) and up to 100 expired spent hashes are purged. No row: not a current token
-- (then refresh_token_reused tells a spent one from an unknown one). Two concurrent
-- refreshes of one token: the second waits for the first's row lock, re-checks
-- refresh_hash on the new row version and matches nothing.
WITH rotated AS (
    UPDATE sessions s
    SET refresh_hash = %(new_hash)s,
        expires_at = now() + make_interval(secs => %(lifetime)s)
    FROM sessions old, users u
    WHERE s.refresh_hash = %(hash)s
      AND s.revoked_at IS NULL
      AND s.expires_at > now()
      AND old.id = s.id
      AND u.id = s.user_id
      AND NOT u.disabled
    RETURNING s.id, old.expires_at AS spent_expires_at, u.public_id, u.admin
), spent AS (
    INSERT INTO spent_refresh_tokens (hash, session_id, expires_at)
    SELECT %(hash)s, id, spent_expires_at FROM rotated
), purged AS (
    DELETE FROM spent_refresh_tokens
    WHERE hash IN (SELECT hash FROM spent_refresh_tokens WHERE expires_at < now()
                   ORDER BY expires_at LIMIT 100)
)
SELECT id AS session_id, public_id, admin FROM rotated;

-- name: refresh_token_reused
-- After rotate_refresh_token found nothing (a later statement: it sees every rotation
-- committed meanwhile): is %(hash)s a spent, unexpired refresh token? Then its whole session
-- is revoked, in this same statement.
WITH spent AS (
    SELECT session_id FROM spent_refresh_tokens
    WHERE hash = %(hash)s AND expires_at > now()
), revoked AS (
    UPDATE sessions SET revoked_at = now()
    WHERE id IN (SELECT session_id FROM spent) AND revoked_at IS NULL
)
SELECT EXISTS (SELECT 1 FROM spent) AS reused;

-- name: revoke_user_sessions
-- Disabling a user: every live session of the user.
UPDATE sessions SET revoked_at = now()
WHERE user_id = %(user_id)s AND revoked_at IS NULL;

-- name: logout_all
-- Logout-all, in one statement with its caller check (see token_caller, migration 0006): no
-- row when the token's user is gone, else the caller's `revoked` (and `admin`); only for a
-- caller who passes, every live session of the caller is revoked.
WITH c AS (
    SELECT id, admin, revoked FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s)
), revoked_sessions AS (
    UPDATE sessions s SET revoked_at = now()
    FROM c
    WHERE s.user_id = c.id AND NOT c.revoked AND s.revoked_at IS NULL
)
SELECT c.revoked, c.admin FROM c;

-- name: change_password
-- The new hash, only if the stored one is still the hash the current password was checked
-- against (a concurrent change wins, this one reports changed = false); and, in the same
-- statement, every other live session of the user revoked.
WITH changed AS (
    UPDATE users SET password_hash = %(new_hash)s
    WHERE id = %(user_id)s AND password_hash = %(old_hash)s
    RETURNING id
), revoked AS (
    UPDATE sessions SET revoked_at = now()
    WHERE user_id IN (SELECT id FROM changed) AND id <> %(session_id)s AND revoked_at IS NULL
)
SELECT EXISTS (SELECT 1 FROM changed) AS changed;

-- name: purge_sessions
-- bin/purge-revoked: every expired session and spent refresh token.
WITH sessions_purged AS (
    DELETE FROM sessions WHERE expires_at < now() RETURNING 1
), spent_purged AS (
    DELETE FROM spent_refresh_tokens WHERE expires_at < now() RETURNING 1
)
SELECT (SELECT count(*) FROM sessions_purged) AS sessions,
       (SELECT count(*) FROM spent_purged) AS spent;
