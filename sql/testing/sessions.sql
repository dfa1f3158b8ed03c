-- Used only by the session, user-administration and conditional-request tests
-- (tests/test_sessions_api.py, test_users_api.py, test_sessions_live.py). Names start "sess_".

-- name: sess_rows
-- The sessions of one user, oldest first.
SELECT s.id, s.refresh_hash, s.refresh_generation, s.created_at, s.expires_at, s.revoked_at
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE lower(u.email) = lower(%(email)s)
ORDER BY s.created_at, s.id;

-- name: sess_spent
SELECT hash, session_id, expires_at FROM spent_refresh_tokens ORDER BY expires_at, hash;

-- name: sess_text_holds
-- How many session and spent-token rows hold %(needle)s anywhere in their text form.
SELECT (SELECT count(*) FROM sessions s WHERE strpos(s::text, %(needle)s) > 0)
     + (SELECT count(*) FROM spent_refresh_tokens t WHERE strpos(t::text, %(needle)s) > 0)
       AS rows;

-- name: sess_insert_legacy
-- A session as the code before migration 0009 made it: generation 0, refresh_hash the SHA-256
-- of the refresh token's text (%(token_hash)s).
INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
SELECT %(session_id)s, u.id, %(token_hash)s, now() + interval '30 days'
FROM users u WHERE lower(u.email) = lower(%(email)s);

-- name: sess_table_rows
-- Every row of the tables a refresh reads or writes (and the other token tables).
SELECT (SELECT count(*) FROM sessions) AS sessions,
       (SELECT count(*) FROM spent_refresh_tokens) AS spent_refresh_tokens,
       (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM revoked_tokens) AS revoked_tokens;

-- name: sess_expire
-- Make a session's current refresh token (and the session) expired.
UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = %(session_id)s::uuid;

-- name: sess_expire_spent
UPDATE spent_refresh_tokens SET expires_at = now() - interval '1 second'
WHERE session_id = %(session_id)s::uuid;

-- name: sess_insert_expired
-- %(count)s sessions of the user that expired between 1 hour and 1 hour + count seconds ago
-- (the one numbered 1 most recently), revoked or not, each with %(spent)s expired spent
-- tokens.
WITH made AS (
    INSERT INTO sessions (id, user_id, refresh_hash, created_at, expires_at, revoked_at)
    SELECT gen_random_uuid(), u.id, sha256(convert_to(%(prefix)s || g, 'UTF8')),
           now() - interval '40 days', now() - interval '1 hour' - g * interval '1 second',
           CASE WHEN mod(g, 2) = 0 THEN now() - interval '2 hours' END
    FROM users u, generate_series(1, %(count)s::int) AS g
    WHERE lower(u.email) = lower(%(email)s)
    RETURNING id, expires_at
)
INSERT INTO spent_refresh_tokens (hash, session_id, expires_at)
SELECT sha256(convert_to(%(prefix)s || m.id::text || '-' || k, 'UTF8')), m.id, m.expires_at
FROM made m, generate_series(1, %(spent)s::int) AS k;

-- name: sess_counts
SELECT (SELECT count(*) FROM sessions WHERE expires_at < now()) AS expired_sessions,
       (SELECT count(*) FROM sessions WHERE expires_at >= now()) AS live_sessions,
       (SELECT count(*) FROM spent_refresh_tokens WHERE expires_at < now()) AS expired_spent,
       (SELECT count(*) FROM spent_refresh_tokens WHERE expires_at >= now()) AS live_spent;

-- name: sess_user_flags
SELECT admin, disabled, password_hash FROM users WHERE lower(email) = lower(%(email)s);

-- name: sess_widget_etag
SELECT etag, info_url FROM widgets WHERE name = %(widget)s;

-- name: sess_lock_waiters
-- How many other backends of this database wait for a lock (a row lock, here): lets a test
-- know that the statement it started in a thread has reached the lock it must wait for.
SELECT count(*) AS waiting FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid();

-- name: sess_set_flags
UPDATE users SET admin = %(admin)s, disabled = %(disabled)s
WHERE lower(email) = lower(%(email)s);

-- name: sess_enabled_admins
SELECT email FROM users WHERE admin AND NOT disabled ORDER BY id;

-- name: sess_lock_first_admin
-- Held in a test's transaction: the first row every demotion or disable must lock (the
-- enabled administrators are locked in id order), so that racing PATCHes queue behind it.
SELECT id FROM users WHERE admin AND NOT disabled ORDER BY id LIMIT 1 FOR UPDATE;

-- name: sess_lock_all_admins
SELECT id FROM users WHERE admin ORDER BY id FOR UPDATE;
