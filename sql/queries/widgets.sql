-- name: insert_widget
-- Returns nothing when the name is taken: the unique constraint decides, even under races.
INSERT INTO widgets (name, info_url, deadline, owner_id)
VALUES (%(name)s, %(info_url)s, %(deadline)s, %(owner_id)s)
ON CONFLICT (name) DO NOTHING
RETURNING id;

-- name: upsert_widget
-- PUT: update the widget, or create it (owned by the caller) when it does not exist, in one
-- race-free statement. xmax = 0 only on a freshly inserted row version.
INSERT INTO widgets (name, info_url, deadline, owner_id)
VALUES (%(name)s, %(info_url)s, %(deadline)s, %(owner_id)s)
ON CONFLICT (name) DO UPDATE
    SET info_url = EXCLUDED.info_url, deadline = EXCLUDED.deadline, updated_at = now()
RETURNING (xmax = 0) AS created;

-- name: widget_by_name
SELECT w.name, w.info_url, w.created_at, w.deadline,
       u.email AS owner_email, u.public_id AS owner_public_id
FROM widgets w
JOIN users u ON u.id = w.owner_id
WHERE w.name = %(name)s;

-- name: delete_widget
DELETE FROM widgets WHERE name = %(name)s;

-- name: widget_page
-- One page in creation order plus the exact total, in one statement (one snapshot).
-- The OFFSET is walked over the primary key alone (an index-only scan, about half the cost of
-- walking whole rows on deep pages); only the page's ids are then looked up and joined to
-- their owners (= ANY keeps that an index lookup in the cached generic plan, whatever the
-- LIMIT). A page past the end still returns one row: the total, with NULL widget columns.
SELECT c.total AS total_items,
       w.name, w.info_url, w.created_at, w.deadline,
       u.email AS owner_email, u.public_id AS owner_public_id
FROM widget_count c
LEFT JOIN (widgets w JOIN users u ON u.id = w.owner_id)
    ON w.id = ANY (ARRAY(SELECT id FROM widgets ORDER BY id LIMIT %(limit)s OFFSET %(offset)s))
ORDER BY w.id;
