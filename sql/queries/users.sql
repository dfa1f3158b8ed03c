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
-- The one round trip behind every authenticated request: does the user still exist,
-- is it an admin now, and has this token been revoked.
SELECT u.id, u.public_id, u.email, u.admin, u.registered_on,
       EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = %(jti)s) AS revoked
FROM users u
WHERE u.public_id = %(public_id)s;
