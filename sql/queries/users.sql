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

-- name: users_cursor_page
-- GET /users with a cursor (docs/API.md §8.7): the users registered after the keyset
-- (%(after_time)s, %(after_id)s) in registration order, at most %(limit)s; the first page
-- starts from ('-infinity', 0). One range of users_registered_on_idx; nothing is counted.
SELECT email, public_id, admin, disabled, registered_on, id
FROM users
WHERE (registered_on, id) > (%(after_time)s, %(after_id)s)
ORDER BY registered_on, id
LIMIT %(limit)s;

-- name: update_user_flags
-- PATCH /users/{public_id}: a NULL leaves that flag as it is. One row: `found` (the user
-- exists) and, when the change was made, the user's columns; found with NULL columns: refused,
-- since it would leave no enabled administrator (docs/API.md §8.5).
--
-- The last-administrator rule is decided here, in the statement that changes the row: a
-- demotion or disable first locks every enabled administrator FOR NO KEY UPDATE in id order
-- (users_enabled_admins_idx, migration 0010), the whole set before the target row is touched
-- (an aggregate over it), and changes an enabled administrator only if another one is among
-- them. Under READ COMMITTED a locked row that a concurrent transaction changed is re-checked
-- on its newest version once that transaction commits, and dropped if it is no longer an
-- enabled administrator: two administrators demoting each other at once therefore take turns
-- on the first lock, and the second finds only itself left. (A plain EXISTS would read the
-- statement's snapshot and let both through.) The fixed order means no deadlock; NO KEY UPDATE
-- does not wait for logins' session inserts (their foreign-key checks take KEY SHARE). A
-- change that can demote or disable nobody (%(admin)s not false, %(disabled)s not true)
-- locks nothing.
--
-- Run in one transaction with revoke_user_sessions when disabling: this UPDATE waits for any
-- login that holds the row FOR SHARE (start_session), so the next statement sees that
-- login's session too.
WITH admins AS MATERIALIZED (
    SELECT id FROM users
    WHERE admin AND NOT disabled
      AND (%(admin)s::boolean IS FALSE OR %(disabled)s::boolean IS TRUE)
    ORDER BY id
    FOR NO KEY UPDATE
), others AS (
    SELECT count(*) AS n FROM admins a
    WHERE a.id IS DISTINCT FROM (SELECT id FROM users WHERE public_id = %(public_id)s)
), changed AS (
    UPDATE users u
    SET admin = coalesce(%(admin)s, u.admin), disabled = coalesce(%(disabled)s, u.disabled)
    FROM others o
    WHERE u.public_id = %(public_id)s
      AND (o.n > 0
           OR NOT (u.admin AND NOT u.disabled)
           OR (coalesce(%(admin)s, u.admin) AND NOT coalesce(%(disabled)s, u.disabled)))
    RETURNING u.id, u.email, u.public_id, u.admin, u.disabled, u.registered_on
)
SELECT EXISTS (SELECT 1 FROM users WHERE public_id = %(public_id)s) AS found,
       c.id, c.email, c.public_id, c.admin, c.disabled, c.registered_on
FROM (SELECT 1) AS one
LEFT JOIN changed c ON true;
