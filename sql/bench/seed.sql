-- Used only by bin/bench: fill the widget table fast, a chunk of ids per statement (so that a
-- million widgets can report progress as they go).
-- name: bench_seed_widgets
-- Deadlines are days (as the service keeps them) spread over ten years from a month ahead, so
-- that a page sorted by deadline and filtered by name finds its names spread over the
-- deadlines as a real collection's are (with one deadline for all, the deadline index would
-- hold the names of each prefix together, at one end of the walk).
INSERT INTO widgets (name, info_url, deadline, owner_id)
SELECT 'widget-' || g, 'https://www.example.com/widgets/' || g,
       date_trunc('day', now()) + make_interval(days => 30 + ((g * 7919) %% 3650)::int)
           + interval '23:59:59.999999',
       %(owner_id)s
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
