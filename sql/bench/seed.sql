-- Used only by bin/bench: fill the widget table fast, in one statement.
-- name: bench_seed_widgets
INSERT INTO widgets (name, info_url, deadline, owner_id)
SELECT 'widget-' || g, 'https://www.example.com/widgets/' || g,
       now() + interval '30 days', %(owner_id)s
FROM generate_series(1, %(count)s) AS g;

-- name: bench_vacuum_analyze
-- Fresh statistics and visibility map, as a long-running database would have.
VACUUM ANALYZE widgets;

-- name: bench_seed_sessions
-- Sessions of the bench user whose refresh tokens hash to %(hashes)s (the refresh scenario
-- starts each run with fresh ones, one per connection).
INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
SELECT gen_random_uuid(), %(user_id)s, h, now() + interval '30 days'
FROM unnest(%(hashes)s::bytea[]) AS h;
