-- Used only by the test suite, between tests: empty every table the service writes.
-- name: reset_all
TRUNCATE widgets, revoked_tokens, users, login_failures RESTART IDENTITY CASCADE;

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
