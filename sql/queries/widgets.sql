-- name: insert_widget
-- POST, in one statement with its caller check (see token_caller, migration 0003): no row
-- when the token's user is gone, else one row with the caller's `revoked` and `admin` and the
-- new widget's id. The insert happens only for an admin whose token is not revoked; widget_id
-- is NULL when it did not, or when the name is taken (the unique constraint decides, even
-- under races).
WITH c AS (
    SELECT id, admin, revoked FROM token_caller(%(subject)s, %(token_id)s)
), inserted AS (
    INSERT INTO widgets (name, info_url, deadline, owner_id)
    SELECT %(name)s, %(info_url)s, %(deadline)s, c.id FROM c
    WHERE c.admin AND NOT c.revoked
    ON CONFLICT (name) DO NOTHING
    RETURNING id
)
SELECT c.revoked, c.admin, (SELECT id FROM inserted) AS widget_id
FROM c;

-- name: upsert_widget
-- PUT: update the widget, or create it (owned by the caller) when it does not exist, in one
-- race-free statement that also checks the caller like insert_widget: `created` is NULL when
-- nothing was written (a refused caller), else true on a freshly inserted row version
-- (xmax = 0 only there).
WITH c AS (
    SELECT id, admin, revoked FROM token_caller(%(subject)s, %(token_id)s)
), written AS (
    INSERT INTO widgets (name, info_url, deadline, owner_id)
    SELECT %(name)s, %(info_url)s, %(deadline)s, c.id FROM c
    WHERE c.admin AND NOT c.revoked
    ON CONFLICT (name) DO UPDATE
        SET info_url = EXCLUDED.info_url, deadline = EXCLUDED.deadline, updated_at = now()
    RETURNING (xmax = 0) AS created
)
SELECT c.revoked, c.admin, w.created
FROM c LEFT JOIN written w ON true;

-- name: widget_by_name
-- Also checks the caller, in the same statement (see token_caller, migration 0003): no row
-- when the token's user is gone, else one row whose widget columns are NULL when there is no
-- such widget.
SELECT c.revoked,
       w.name, w.info_url, w.created_at, w.deadline,
       u.email AS owner_email, u.public_id::text AS owner_public_id
FROM token_caller(%(subject)s, %(token_id)s) c
LEFT JOIN (widgets w JOIN users u ON u.id = w.owner_id) ON w.name = %(name)s;

-- name: delete_widget
-- DELETE, in one statement with its caller check like insert_widget: `deleted` counts the
-- rows removed (0 when there is no such widget, or for a refused caller).
WITH c AS (
    SELECT admin, revoked FROM token_caller(%(subject)s, %(token_id)s)
), deleted AS (
    DELETE FROM widgets w
    USING c
    WHERE w.name = %(name)s AND c.admin AND NOT c.revoked
    RETURNING w.id
)
SELECT c.revoked, c.admin, (SELECT count(*) FROM deleted) AS deleted
FROM c;

-- name: widget_page
-- One page in creation order plus the exact total, in one statement (one snapshot), which
-- also checks the caller like widget_by_name: no row when the token's user is gone, else the
-- page's rows, or one row with NULL widget columns when the page is past the end.
-- The total is the sum of the per-block counts (migration 0004). The page's first id is found
-- by an OFFSET over the primary key alone (an index-only scan), from the table's start for the
-- first 4096 positions, else from the block holding that position, so it never skips more
-- than 4096 ids; the page is then read in id order from there, joined to its owners.
-- (The blocks are only read for offsets past 4096: page 1 costs none of that.)
WITH blocks AS (
    SELECT first_id, (sum(widgets) OVER (ORDER BY first_id) - widgets)::bigint AS before
    FROM widget_blocks
), start AS (
    SELECT first_id, before FROM blocks
    WHERE before <= %(offset)s
    ORDER BY first_id DESC
    LIMIT 1
)
SELECT c.revoked,
       (SELECT coalesce(sum(widgets), 0) FROM widget_blocks)::bigint AS total_items,
       p.name, p.info_url, p.created_at, p.deadline, p.owner_email, p.owner_public_id
FROM token_caller(%(subject)s, %(token_id)s) c
LEFT JOIN LATERAL (
    SELECT w.id, w.name, w.info_url, w.created_at, w.deadline,
           u.email AS owner_email, u.public_id::text AS owner_public_id
    FROM widgets w
    JOIN users u ON u.id = w.owner_id
    WHERE w.id >= CASE
        WHEN %(offset)s < 4096 THEN (
            SELECT id FROM widgets ORDER BY id OFFSET %(offset)s LIMIT 1)
        ELSE (
            SELECT id FROM widgets
            WHERE id >= (SELECT first_id FROM start)
            ORDER BY id
            OFFSET %(offset)s - (SELECT before FROM start)
            LIMIT 1)
        END
    ORDER BY w.id
    LIMIT %(limit)s
) p ON true
ORDER BY p.id;
