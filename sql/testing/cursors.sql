-- Used only by tests/test_list_cursors.py and tests/test_list_indexes.py (migration 0011).

-- name: cursors_insert_widgets
-- Widgets named %(prefix)s-<n>, n = 1..%(count)s, owned by %(owner)s (a public_id), with
-- deadlines spread over %(days)s days from %(start)s and creation times that repeat (so that
-- every sort has ties its name must break), in one statement.
INSERT INTO widgets (name, info_url, deadline, created_at, owner_id)
SELECT %(prefix)s || '-' || g, 'https://www.example.com/' || g,
       %(start)s::timestamptz + make_interval(days => (g * 7919) %% %(days)s::int)
           + interval '23:59:59.999999',
       %(start)s::timestamptz + make_interval(secs => (g %% 5)),
       (SELECT id FROM users WHERE public_id = %(owner)s)
FROM generate_series(1, %(count)s::int) AS g;

-- name: cursors_delete_names
DELETE FROM widgets WHERE name = ANY (%(names)s::text[]);

-- name: cursors_seed_million
-- %(count)s widgets for the plan test, quickly: one INSERT ... SELECT over generate_series,
-- owners spread over the given users, deadlines over ten years, creation times over a year.
-- Names and creation times grow with g (appended to their indexes, as a live table's
-- creation times are), deadlines are spread.
INSERT INTO widgets (name, info_url, deadline, created_at, owner_id)
SELECT 'seed-' || lpad(g::text, 7, '0'), 'https://www.example.com/' || g,
       timestamptz '2020-01-01' + make_interval(days => ((g * 7919) %% 3650)::int)
           + interval '23:59:59.999999',
       timestamptz '2020-01-01' + make_interval(secs => g * 31),
       (%(owners)s::bigint[])[1 + g %% cardinality(%(owners)s::bigint[])]
FROM generate_series(1, %(count)s::bigint) AS g;

-- name: cursors_analyze
-- As bin/bench's seed and autovacuum leave a live table: analyzed, its visibility map set.
VACUUM ANALYZE widgets;

-- name: cursors_user_ids
SELECT id FROM users ORDER BY id;

-- name: cursors_plan
-- The plan of a sorted or filtered widget page (or its count), as widget_list runs it.
SELECT widget_list_plan(%(sort_key)s, %(descending)s, %(after_time)s, %(after_name)s,
                        %(deadline_from)s, %(deadline_to)s, %(owner)s, %(name_like)s,
                        %(skip)s, %(take)s, %(counting)s) AS line;
