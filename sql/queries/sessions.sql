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
-- Login: a session for a user who is (still) enabled and whose password hash is still the one
-- the login verified (%(password_hash)s), plus a bounded purge of expired sessions. FOR SHARE
-- makes a concurrent disable or password change wait for this insert, or this insert wait for
-- it and then re-check the row's latest version (READ COMMITTED re-evaluates a locked row's
-- condition): a password changed since the check means no session (see disable_user and
-- change_password).
WITH owner AS (
    SELECT id FROM users
    WHERE id = %(user_id)s AND NOT disabled AND password_hash = %(password_hash)s
    FOR SHARE
), purged AS (
    DELETE FROM sessions
    WHERE id IN (SELECT id FROM sessions WHERE expires_at < now()
                 ORDER BY expires_at LIMIT 100)
)
INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
SELECT %(session_id)s, id, %(refresh_hash)s, now() + make_interval(secs => %(lifetime)s)
FROM owner
RETURNING id;

-- name: refresh_session
-- Refresh with a token of the current format (its MAC already checked: widgetsvc/auth/
-- sessions.py), in one statement, by the session's primary key. Either
--   * the token is the session's current generation (same generation, its random part hashes
--     to refresh_hash), the session alive and its user enabled: the generation moves on, with
--     %(new_hash)s and a new expiry; `rotated` is true;
--   * or it is an older generation of an unexpired session: a reuse, the session is revoked
--     (stays revoked); `rotated` is false;
--   * or no row: unknown, expired, revoked, or not the current token.
-- Nothing else is written: storage grows with sessions, not refreshes. Two concurrent
-- refreshes of one token: the second waits for the first's row lock, then re-checks its
-- condition on the new row version (READ COMMITTED), finds a newer generation and is a reuse.
UPDATE sessions s
SET refresh_hash = CASE WHEN s.refresh_generation = %(generation)s
                        THEN %(new_hash)s ELSE s.refresh_hash END,
    refresh_generation = CASE WHEN s.refresh_generation = %(generation)s
                              THEN s.refresh_generation + 1 ELSE s.refresh_generation END,
    expires_at = CASE WHEN s.refresh_generation = %(generation)s
                      THEN now() + make_interval(secs => %(lifetime)s) ELSE s.expires_at END,
    revoked_at = CASE WHEN s.refresh_generation > %(generation)s
                      THEN coalesce(s.revoked_at, now()) ELSE s.revoked_at END
FROM users u
WHERE s.id = %(session_id)s
  AND u.id = s.user_id
  AND s.expires_at > now()
  AND ((s.refresh_generation = %(generation)s AND s.refresh_hash = %(hash)s
        AND s.revoked_at IS NULL AND NOT u.disabled)
       OR s.refresh_generation > %(generation)s)
RETURNING s.id AS session_id, s.refresh_generation AS generation,
          s.refresh_hash = %(new_hash)s AS rotated, u.public_id, u.admin;

-- name: rotate_legacy_refresh_token
-- Refresh with a legacy token (43 characters, issued before migration 0009): the session whose
-- refresh_hash is the SHA-256 of its text, alive and of an enabled user, moves to the next
-- generation with %(new_hash)s (a token of the current format) and a new expiry; the legacy
-- hash is kept as spent (with its own expiry), at most once per session since the session
-- now holds a current-format token, and up to 100 expired spent hashes are purged. No row:
-- not a current token (then legacy_refresh_token_reused tells a spent one from an unknown
-- one). Two concurrent refreshes of one token: the second waits for the first's row lock,
-- re-checks refresh_hash on the new row version and matches nothing.
WITH rotated AS (
    UPDATE sessions s
    SET refresh_hash = %(new_hash)s,
        refresh_generation = s.refresh_generation + 1,
        expires_at = now() + make_interval(secs => %(lifetime)s)
    FROM sessions old, users u
    WHERE s.refresh_hash = %(hash)s
      AND s.revoked_at IS NULL
      AND s.expires_at > now()
      AND old.id = s.id
      AND u.id = s.user_id
      AND NOT u.disabled
    RETURNING s.id, s.refresh_generation, old.expires_at AS spent_expires_at, u.public_id,
              u.admin
), spent AS (
    INSERT INTO spent_refresh_tokens (hash, session_id, expires_at)
    SELECT %(hash)s, id, spent_expires_at FROM rotated
), purged AS (
    DELETE FROM spent_refresh_tokens
    WHERE hash IN (SELECT hash FROM spent_refresh_tokens WHERE expires_at < now()
                   ORDER BY expires_at LIMIT 100)
)
SELECT id AS session_id, refresh_generation AS generation, public_id, admin FROM rotated;

-- name: legacy_refresh_token_reused
-- After rotate_legacy_refresh_token found nothing (a later statement: it sees every rotation
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
-- against (a concurrent change wins, this one reports changed = false). Run in one
-- transaction with revoke_other_sessions: this UPDATE waits for any login holding the row
-- FOR SHARE (start_session), so the next statement, with a newer snapshot, sees that login's
-- session too, and every login after it finds the new hash and starts none.
WITH changed AS (
    UPDATE users SET password_hash = %(new_hash)s
    WHERE id = %(user_id)s AND password_hash = %(old_hash)s
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM changed) AS changed;

-- name: revoke_other_sessions
-- After change_password, in its transaction: every other live session of the user.
UPDATE sessions SET revoked_at = now()
WHERE user_id = %(user_id)s AND id <> %(session_id)s AND revoked_at IS NULL;

-- name: purge_sessions
-- bin/purge-revoked: every expired session and spent (legacy) refresh token.
WITH sessions_purged AS (
    DELETE FROM sessions WHERE expires_at < now() RETURNING 1
), spent_purged AS (
    DELETE FROM spent_refresh_tokens WHERE expires_at < now() RETURNING 1
)
SELECT (SELECT count(*) FROM sessions_purged) AS sessions,
       (SELECT count(*) FROM spent_purged) AS spent;
