-- name: insert_user
-- Returns nothing when the e-mail is taken (any case): the unique index decides.
INSERT INTO users (public_id, email, password_hash, admin)
VALUES (%(public_id)s, %(email)s, %(password_hash)s, %(admin)s)
ON CONFLICT DO NOTHING
RETURNING id, public_id, email, admin, registered_on;

-- name: user_by_email
SELECT id, public_id, email, password_hash, admin, registered_on
FROM users
WHERE lower(email) = lower(%(email)s);

-- name: authenticate
-- The caller of a request that is not a caller-checking read (see token_caller, migration
-- 0003): does the user still exist, is it an admin now, has this token been revoked.
SELECT id, public_id, email, admin, registered_on, revoked
FROM token_caller(%(subject)s, %(token_id)s);
