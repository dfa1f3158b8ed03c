-- The per-address rate limit of login, register and password changes (docs/API.md §8.8),
-- counted here so that every worker and instance shares one count and each answer can say how
-- many requests are left (nginx's limit_req cannot).
--
-- A fixed window per client address: it starts at the address's first request and lasts
-- `window_seconds`; `used` counts the requests in it, capped one past the quota (the mark of a
-- refused request). UNLOGGED: a count is worth nothing after a crash (the window starts
-- again), and a transaction that writes only here waits for no WAL flush.
CREATE UNLOGGED TABLE auth_rate_windows (
    address    inet        PRIMARY KEY,
    started_at timestamptz NOT NULL,
    used       integer     NOT NULL CHECK (used >= 1)
);

CREATE INDEX auth_rate_windows_started_at_idx ON auth_rate_windows (started_at);

-- Takes one request of `from_address`'s window: `remaining` is what is left after it (-1: the
-- quota was already spent, the request is refused), `reset_seconds` the seconds until the
-- window ends (at least 1). An address seen for the first time also purges up to 100 windows
-- that ended, so the table stays bounded with a bounded cost per call.
CREATE FUNCTION auth_rate_take(from_address inet, window_seconds int, quota int,
                               OUT remaining int, OUT reset_seconds int)
LANGUAGE plpgsql VOLATILE
-- plpgsql, not sql: its statements' plans are kept for the session.
AS $$
DECLARE
    fresh boolean;
BEGIN
    INSERT INTO auth_rate_windows AS w (address, started_at, used)
    VALUES (from_address, now(), 1)
    ON CONFLICT (address) DO UPDATE SET
        started_at = CASE WHEN w.started_at > now() - make_interval(secs => window_seconds)
                          THEN w.started_at ELSE now() END,
        used = CASE WHEN w.started_at > now() - make_interval(secs => window_seconds)
                    THEN least(w.used + 1, quota + 1) ELSE 1 END
    RETURNING quota - w.used,
              greatest(1, ceil(extract(epoch FROM
                  w.started_at + make_interval(secs => window_seconds) - now())))::int,
              w.xmax = 0
    INTO remaining, reset_seconds, fresh;
    IF fresh THEN
        DELETE FROM auth_rate_windows
        WHERE address IN (SELECT address FROM auth_rate_windows
                          WHERE started_at < now() - make_interval(secs => window_seconds)
                          ORDER BY started_at LIMIT 100);
    END IF;
END
$$;
