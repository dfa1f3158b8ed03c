-- Used only by tests/test_token_attacks.py, tests/test_fuzz.py and tests/test_revocation.py.
-- Every name starts with "attacks_" (load_queries wants names unique across sql/testing/).

-- name: attacks_delete_user
-- A validly signed token whose user no longer exists.
DELETE FROM users WHERE lower(email) = lower(%(email)s);

-- name: attacks_set_admin
-- Promote or demote a user after its token was issued.
UPDATE users SET admin = %(admin)s WHERE lower(email) = lower(%(email)s);

-- name: attacks_count_users
SELECT count(*) AS n FROM users;

-- name: attacks_count_widgets
-- Fails (undefined table) if the widgets table was dropped.
SELECT count(*) AS n FROM widgets;

-- name: attacks_table_exists
SELECT to_regclass(%(relation)s::text) IS NOT NULL AS present;

-- name: attacks_widget_info_url
SELECT info_url FROM widgets WHERE name = %(widget)s;

-- name: attacks_insert_expired_revocations
-- %(count)s revocations that expired between 1 hour and 1 hour + count seconds ago; the
-- one numbered 1 expired most recently.
INSERT INTO revoked_tokens (jti, expires_at)
SELECT %(prefix)s || g, now() - interval '1 hour' - g * interval '1 second'
FROM generate_series(1, %(count)s::int) AS g;

-- name: attacks_insert_live_revocations
-- %(count)s revocations that expire in the future.
INSERT INTO revoked_tokens (jti, expires_at)
SELECT %(prefix)s || g, now() + interval '1 hour' + g * interval '1 second'
FROM generate_series(1, %(count)s::int) AS g;

-- name: attacks_revocation_counts
SELECT count(*) FILTER (WHERE expires_at < now()) AS expired,
       count(*) FILTER (WHERE expires_at >= now()) AS live
FROM revoked_tokens;

-- name: attacks_revoked_jtis
SELECT jti FROM revoked_tokens ORDER BY jti;

-- name: attacks_fill_users
-- %(count)s users that can never log in (the hash is no bcrypt hash).
INSERT INTO users (public_id, email, password_hash)
SELECT gen_random_uuid(), 'bulk' || g || '@example.com', 'not-a-hash'
FROM generate_series(1, %(count)s::int) AS g;

-- name: attacks_fill_sessions
-- One live session for every user that has none (a realistic sessions table to plan over).
INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
SELECT gen_random_uuid(), u.id, sha256(convert_to(u.public_id::text, 'UTF8')),
       now() + interval '30 days'
FROM users u
WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id);

-- name: attacks_analyze
ANALYZE users, revoked_tokens, sessions;

-- name: attacks_explain_prefix
-- Prepended to a named query from sql/queries to read its plan.
EXPLAIN (FORMAT JSON)
