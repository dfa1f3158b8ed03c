-- name: insert_user
-- Returns nothing when the e-mail is taken (any case): the unique index decides.
INSERT INTO users (public_id, email, password_hash, admin)
VALUES (%(public_id)s, %(email)s, %(password_hash)s, %(admin)s)
ON CONFLICT DO NOTHING
RETURNING id, public_id, email, admin, registered_on;

-- name: user_by_email
SELECT id, public_id, email, password_hash, admin, disabled, registered_on
FROM users
WHERE lower(email) = lower(%(email)s);

-- name: authenticate
-- The caller of a request whose statement does not check its caller itself (see
-- token_caller, migration 0006): does the user still exist, is it an admin now, has this
-- token or its session been revoked (or the user disabled).
SELECT id, public_id, email, admin, registered_on, revoked
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s);

-- name: users_page
-- GET /users: one page in registration order plus the exact total, in one statement (one
-- snapshot). One row with NULL user columns when the page is past the end (or there are no
-- users, which an administrator's own request rules out).
SELECT (SELECT count(*) FROM users) AS total_items,
       p.email, p.public_id, p.admin, p.disabled, p.registered_on
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT email, public_id, admin, disabled, registered_on, id
    FROM users
    ORDER BY registered_on, id
    OFFSET %(offset)s
    LIMIT %(limit)s
) p ON true
ORDER BY p.registered_on, p.id;

-- name: update_user_flags
-- PATCH /users/{public_id}: a NULL leaves that flag as it is. Run in one transaction with
-- revoke_user_sessions when disabling: this UPDATE waits for any login that holds the row
-- FOR SHARE (start_session), so the next statement sees that login's session too.
UPDATE users
SET admin = coalesce(%(admin)s, admin), disabled = coalesce(%(disabled)s, disabled)
WHERE public_id = %(public_id)s
RETURNING id, email, public_id, admin, disabled, registered_on;
