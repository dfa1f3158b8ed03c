-- Used only by bin/bench: fill the widget table fast, a chunk of ids per statement (so that a
-- million widgets can report progress as they go).
-- name: bench_seed_widgets
INSERT INTO widgets (name, info_url, deadline, owner_id)
SELECT 'widget-' || g, 'https://www.example.com/widgets/' || g,
       now() + interval '30 days', %(owner_id)s
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g;

-- name: bench_vacuum_analyze
-- Fresh statistics and visibility map, as a long-running database would have.
VACUUM ANALYZE widgets;

-- name: bench_seed_sessions
-- Sessions %(ids)s of the bench user whose refresh tokens' random parts hash to %(hashes)s
-- (the refresh scenario starts each run with fresh ones, one per connection).
INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
SELECT id, %(user_id)s, h, now() + interval '30 days'
FROM unnest(%(ids)s::uuid[], %(hashes)s::bytea[]) AS t (id, h)
RETURNING id;
-- name: bench_seeded_widgets
-- bin/bench --url: is a running service's database seeded already (the last widget exists)?
SELECT count(*) AS n FROM widgets WHERE name = 'widget-' || %(count)s;
