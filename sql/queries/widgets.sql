-- name: insert_widget
-- POST, in one statement with its caller check (see token_caller, migration 0006): no row
-- when the token's user is gone, else one row with the caller's `revoked` and `admin` and the
-- new widget's ETag. The insert happens only for an admin whose token and session are alive;
-- etag is NULL when it did not, or when the name is taken (the unique constraint decides,
-- even under races).
WITH c AS (
    SELECT id, admin, revoked FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s)
), inserted AS (
    INSERT INTO widgets (name, info_url, deadline, owner_id)
    SELECT %(name)s, %(info_url)s, %(deadline)s, c.id FROM c
    WHERE c.admin AND NOT c.revoked
    ON CONFLICT (name) DO NOTHING
    RETURNING etag
)
SELECT c.revoked, c.admin, (SELECT etag FROM inserted) AS etag
FROM c;

-- name: upsert_widget
-- PUT without If-Match: update the widget, or create it (owned by the caller) when it does
-- not exist, in one race-free statement that also checks the caller like insert_widget.
-- xmax = 0 only on a freshly inserted row version. If-None-Match is decided in the same
-- statement: with %(none_match_any)s (`*`) an existing widget is left alone, as is one whose
-- ETag is in %(none_match)s. `created` and `etag` are NULL when nothing was written: a
-- refused caller, else the precondition failed (412). A new ETag on every update.
WITH c AS (
    SELECT id, admin, revoked FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s)
), written AS (
    INSERT INTO widgets (name, info_url, deadline, owner_id)
    SELECT %(name)s, %(info_url)s, %(deadline)s, c.id FROM c
    WHERE c.admin AND NOT c.revoked
    ON CONFLICT (name) DO UPDATE
        SET info_url = EXCLUDED.info_url, deadline = EXCLUDED.deadline, updated_at = now(),
            etag = gen_random_uuid()
        WHERE NOT %(none_match_any)s AND widgets.etag <> ALL (%(none_match)s::uuid[])
    RETURNING (xmax = 0) AS created, etag
)
SELECT c.revoked, c.admin, w.created, w.etag
FROM c LEFT JOIN written w ON true;

-- name: update_widget_if_match
-- PUT with If-Match, checking the caller like insert_widget: update only an existing widget
-- whose ETag is one of %(match)s (or any, with %(match_any)s for `*`), and not in
-- %(none_match)s. Concurrent PUTs with the same If-Match: the second waits for the first's
-- row lock, re-checks the ETag on the new row version and updates nothing. `etag` NULL for a
-- caller who passes: the precondition failed (412).
WITH c AS (
    SELECT admin, revoked FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s)
), updated AS (
    UPDATE widgets w
    SET info_url = %(info_url)s, deadline = %(deadline)s, updated_at = now(),
        etag = gen_random_uuid()
    FROM c
    WHERE w.name = %(name)s AND c.admin AND NOT c.revoked
      AND (%(match_any)s OR w.etag = ANY (%(match)s::uuid[]))
      AND w.etag <> ALL (%(none_match)s::uuid[])
    RETURNING w.etag
)
SELECT c.revoked, c.admin, (SELECT etag FROM updated) AS etag
FROM c;

-- name: widget_by_name
-- Also checks the caller, in the same statement (see token_caller, migration 0006): no row
-- when the token's user is gone, else one row whose widget columns are NULL when there is no
-- such widget.
SELECT c.revoked,
       w.name, w.info_url, w.created_at, w.deadline, w.etag,
       u.email AS owner_email, u.public_id::text AS owner_public_id
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
LEFT JOIN (widgets w JOIN users u ON u.id = w.owner_id) ON w.name = %(name)s;

-- name: delete_widget
-- DELETE, in one statement with its caller check like insert_widget and its preconditions:
-- `found` tells 404 from 412. %(check_match)s says If-Match was sent (%(match_any)s: `*`,
-- else the ETags %(match)s); %(none_match_any)s / %(none_match)s are If-None-Match. A
-- concurrent update or delete makes the DELETE re-check the conditions on the new row
-- version (or find it gone). Nothing is deleted for a refused caller.
WITH c AS (
    SELECT admin, revoked FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s)
), target AS (
    SELECT id FROM widgets WHERE name = %(name)s
), deleted AS (
    DELETE FROM widgets w
    USING target t, c
    WHERE w.id = t.id AND c.admin AND NOT c.revoked
      AND (NOT %(check_match)s OR %(match_any)s OR w.etag = ANY (%(match)s::uuid[]))
      AND NOT %(none_match_any)s
      AND w.etag <> ALL (%(none_match)s::uuid[])
    RETURNING w.id
)
SELECT c.revoked, c.admin,
       EXISTS (SELECT 1 FROM target) AS found, EXISTS (SELECT 1 FROM deleted) AS deleted
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
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
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

-- name: widget_list
-- A filtered page (offset or cursor, in any sort; docs/API.md §8.7), in one statement with
-- its caller check like widget_page: no row when the token's user is gone, else the page's
-- rows (one row with NULL widget columns when there are none). The page is widget_list
-- (migration 0011): one index range in the sort's order. total_items is the filters' count
-- when %(counting)s (offset pages); a cursor page counts nothing.
-- A cursor page starts after (%(after_time)s, the name): %(after_name)s, or, when the cursor
-- had to cut a long name (%(after_id)s not NULL), the whole name of widget %(after_id)s (names
-- never change), read by its primary key; if that widget is gone meanwhile, %(after_name)s
-- (the cut name, past every name starting with it when descending: nothing is skipped).
SELECT c.revoked,
       CASE WHEN %(counting)s THEN widget_list_count(
                %(deadline_from)s, %(deadline_to)s, %(owner)s, %(name_like)s)
       END AS total_items,
       p.id, p.name, p.info_url, p.created_at, p.deadline, p.owner_email, p.owner_public_id
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
LEFT JOIN LATERAL widget_list(
    %(sort_key)s, %(descending)s, %(after_time)s,
    coalesce((SELECT name FROM widgets WHERE id = %(after_id)s::bigint), %(after_name)s),
    %(deadline_from)s,
    %(deadline_to)s, %(owner)s, %(name_like)s, %(skip)s, %(take)s
) WITH ORDINALITY AS p ON true
ORDER BY p.ordinality;

-- The pages sorted by one column and not filtered (docs/API.md §8.7), offset or cursor, each
-- sort its own statement (widgets_by_<column>[_desc]) so that its one generic plan is a range
-- of that sort's index read in order: from just after the position (%(after_time)s, the name)
-- (the first page passes the lowest position, or the highest when descending: '-infinity' and
-- '', 'infinity' and U+10FFFF), skipping %(skip)s rows (offset pages), at most %(take)s.
-- The name is %(after_name)s, or, for a cursor that had to cut a long name (%(after_id)s not
-- NULL), the whole name of that widget read by its primary key, or the cut name if it is gone
-- (see widget_list). Each checks the caller like widget_page: no row when the token's user is
-- gone, else the page's rows (one with NULL widget columns when there are none), with
-- total_items when %(counting)s (the per-block counts).

-- name: widgets_by_name
SELECT c.revoked,
       CASE WHEN %(counting)s
            THEN (SELECT coalesce(sum(widgets), 0) FROM widget_blocks)::bigint END AS total_items,
       p.id, p.name, p.info_url, p.created_at, p.deadline, p.owner_email, p.owner_public_id
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
LEFT JOIN LATERAL (
    SELECT w.id, w.name, w.info_url, w.created_at, w.deadline,
           u.email AS owner_email, u.public_id::text AS owner_public_id
    FROM widgets w
    JOIN users u ON u.id = w.owner_id
    WHERE w.name > coalesce(
        (SELECT name FROM widgets WHERE id = %(after_id)s::bigint), %(after_name)s::text)
    ORDER BY w.name
    OFFSET %(skip)s
    LIMIT %(take)s
) p ON true
ORDER BY p.name;

-- name: widgets_by_name_desc
SELECT c.revoked,
       CASE WHEN %(counting)s
            THEN (SELECT coalesce(sum(widgets), 0) FROM widget_blocks)::bigint END AS total_items,
       p.id, p.name, p.info_url, p.created_at, p.deadline, p.owner_email, p.owner_public_id
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
LEFT JOIN LATERAL (
    SELECT w.id, w.name, w.info_url, w.created_at, w.deadline,
           u.email AS owner_email, u.public_id::text AS owner_public_id
    FROM widgets w
    JOIN users u ON u.id = w.owner_id
    WHERE w.name < coalesce(
        (SELECT name FROM widgets WHERE id = %(after_id)s::bigint), %(after_name)s::text)
    ORDER BY w.name DESC
    OFFSET %(skip)s
    LIMIT %(take)s
) p ON true
ORDER BY p.name DESC;

-- name: widgets_by_deadline
SELECT c.revoked,
       CASE WHEN %(counting)s
            THEN (SELECT coalesce(sum(widgets), 0) FROM widget_blocks)::bigint END AS total_items,
       p.id, p.name, p.info_url, p.created_at, p.deadline, p.owner_email, p.owner_public_id
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
LEFT JOIN LATERAL (
    SELECT w.id, w.name, w.info_url, w.created_at, w.deadline,
           u.email AS owner_email, u.public_id::text AS owner_public_id
    FROM widgets w
    JOIN users u ON u.id = w.owner_id
    WHERE (w.deadline, w.name) > (%(after_time)s::timestamptz, coalesce(
        (SELECT name FROM widgets WHERE id = %(after_id)s::bigint), %(after_name)s::text))
    ORDER BY w.deadline, w.name
    OFFSET %(skip)s
    LIMIT %(take)s
) p ON true
ORDER BY p.deadline, p.name;

-- name: widgets_by_deadline_desc
SELECT c.revoked,
       CASE WHEN %(counting)s
            THEN (SELECT coalesce(sum(widgets), 0) FROM widget_blocks)::bigint END AS total_items,
       p.id, p.name, p.info_url, p.created_at, p.deadline, p.owner_email, p.owner_public_id
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
LEFT JOIN LATERAL (
    SELECT w.id, w.name, w.info_url, w.created_at, w.deadline,
           u.email AS owner_email, u.public_id::text AS owner_public_id
    FROM widgets w
    JOIN users u ON u.id = w.owner_id
    WHERE (w.deadline, w.name) < (%(after_time)s::timestamptz, coalesce(
        (SELECT name FROM widgets WHERE id = %(after_id)s::bigint), %(after_name)s::text))
    ORDER BY w.deadline DESC, w.name DESC
    OFFSET %(skip)s
    LIMIT %(take)s
) p ON true
ORDER BY p.deadline DESC, p.name DESC;

-- name: widgets_by_created_at
SELECT c.revoked,
       CASE WHEN %(counting)s
            THEN (SELECT coalesce(sum(widgets), 0) FROM widget_blocks)::bigint END AS total_items,
       p.id, p.name, p.info_url, p.created_at, p.deadline, p.owner_email, p.owner_public_id
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
LEFT JOIN LATERAL (
    SELECT w.id, w.name, w.info_url, w.created_at, w.deadline,
           u.email AS owner_email, u.public_id::text AS owner_public_id
    FROM widgets w
    JOIN users u ON u.id = w.owner_id
    WHERE (w.created_at, w.name) > (%(after_time)s::timestamptz, coalesce(
        (SELECT name FROM widgets WHERE id = %(after_id)s::bigint), %(after_name)s::text))
    ORDER BY w.created_at, w.name
    OFFSET %(skip)s
    LIMIT %(take)s
) p ON true
ORDER BY p.created_at, p.name;

-- name: widgets_by_created_at_desc
SELECT c.revoked,
       CASE WHEN %(counting)s
            THEN (SELECT coalesce(sum(widgets), 0) FROM widget_blocks)::bigint END AS total_items,
       p.id, p.name, p.info_url, p.created_at, p.deadline, p.owner_email, p.owner_public_id
FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s) c
LEFT JOIN LATERAL (
    SELECT w.id, w.name, w.info_url, w.created_at, w.deadline,
           u.email AS owner_email, u.public_id::text AS owner_public_id
    FROM widgets w
    JOIN users u ON u.id = w.owner_id
    WHERE (w.created_at, w.name) < (%(after_time)s::timestamptz, coalesce(
        (SELECT name FROM widgets WHERE id = %(after_id)s::bigint), %(after_name)s::text))
    ORDER BY w.created_at DESC, w.name DESC
    OFFSET %(skip)s
    LIMIT %(take)s
) p ON true
ORDER BY p.created_at DESC, p.name DESC;
