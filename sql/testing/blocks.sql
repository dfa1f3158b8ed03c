-- Used only by tests/test_widget_blocks.py (the per-block counts of migration 0004).

-- name: blocks_insert_ids
-- Widgets with the given ids (a test places them in chosen blocks), in one statement.
INSERT INTO widgets (id, name, info_url, deadline, owner_id) OVERRIDING SYSTEM VALUE
SELECT g, 'w-' || g, 'https://www.example.com/' || g, now() + interval '30 days', %(owner_id)s
FROM unnest(%(ids)s::bigint[]) AS g;

-- name: blocks_insert_generated
-- %(count)s widgets with ids from the identity sequence, in one statement.
INSERT INTO widgets (name, info_url, deadline, owner_id)
SELECT 'bulk-' || g, 'https://www.example.com/' || g, now() + interval '30 days', %(owner_id)s
FROM generate_series(1, %(count)s::int) AS g;

-- name: blocks_delete_ids
DELETE FROM widgets WHERE id = ANY (%(ids)s::bigint[]);

-- name: blocks_truncate
TRUNCATE widgets;

-- name: blocks_kept
SELECT first_id, widgets FROM widget_blocks ORDER BY first_id;

-- name: blocks_counted
-- What widget_blocks must hold: counted from the rows themselves.
SELECT id - mod(id, 4096) AS first_id, count(*) AS widgets FROM widgets GROUP BY 1 ORDER BY 1;

-- name: blocks_plain_page
-- The page as a plain OFFSET over the whole table would give it.
SELECT name FROM widgets ORDER BY id LIMIT %(limit)s OFFSET %(offset)s;

-- name: blocks_vacuum_analyze
VACUUM ANALYZE widgets, widget_blocks;

-- name: blocks_explain_analyze_prefix
-- Prepended to a named query from sql/queries to read its plan and the rows each step read.
EXPLAIN (ANALYZE, FORMAT JSON)

-- name: blocks_delete_range
DELETE FROM widgets WHERE id BETWEEN %(first)s AND %(last)s;
