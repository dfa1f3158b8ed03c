-- The per-address rate limit of login, register and password changes (docs/API.md §8.8),
-- and an Idempotency-Key replay that runs no write (below).
--
-- The rate limit:
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

-- POST /widgets with an Idempotency-Key (docs/API.md §8.8), one call: a replay (or the 422) is
-- answered by the caller check and the key's lookup alone. As one SQL statement (0012) every
-- call also set up its inserts, delete and trigger, whatever it then did: a replay cost six
-- times a widget read in PostgreSQL. Otherwise the statement of 0012, unchanged: the key's
-- advisory lock tried (`free` false: the first request is still in flight), and with it held
-- the widget inserted (or found taken) and the outcome recorded, replacing a dead (24 h old)
-- row of the key, with up to 100 other dead rows purged; idempotency_key_raced() aborts it
-- (nothing written) if the key was recorded by a request that committed after its snapshot.
CREATE FUNCTION insert_widget_idempotent(
    p_subject uuid, p_token_id text, p_session_id uuid, p_name text, p_info_url text,
    p_deadline timestamptz, p_key text, p_request_hash bytea, p_lock_id bigint)
RETURNS TABLE (revoked boolean, admin boolean, prior_hash bytea, prior_status smallint,
               prior_name text, prior_etag uuid, free boolean, etag uuid, raced boolean)
LANGUAGE plpgsql VOLATILE
-- plpgsql: its statements' plans are kept for the session, and the write is only run when
-- there is no outcome to replay.
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT c.revoked, c.admin, k.request_hash, k.status, k.name, k.etag,
           NULL::boolean, NULL::uuid, NULL::boolean
    FROM token_caller(p_subject, p_token_id, p_session_id) AS c
    JOIN idempotency_keys AS k
      ON k.scope = 'widgets' AND k.owner = p_subject::text AND k.key = p_key
     AND k.created_at > now() - interval '24 hours';
    IF FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH c AS (
        SELECT id, admin, revoked FROM token_caller(p_subject, p_token_id, p_session_id)
    ), prior AS (
        SELECT k.request_hash, k.status, k.name, k.etag
        FROM idempotency_keys k
        WHERE k.scope = 'widgets' AND k.owner = p_subject::text AND k.key = p_key
          AND k.created_at > now() - interval '24 hours'
    ), gate AS MATERIALIZED (
        SELECT pg_try_advisory_xact_lock(p_lock_id) AS free
        FROM c
        WHERE c.admin AND NOT c.revoked AND NOT EXISTS (SELECT 1 FROM prior)
    ), inserted AS (
        INSERT INTO widgets (name, info_url, deadline, owner_id)
        SELECT p_name, p_info_url, p_deadline, c.id FROM c, gate
        WHERE gate.free
        ON CONFLICT (name) DO NOTHING
        RETURNING etag
    ), recorded AS (
        INSERT INTO idempotency_keys AS k (scope, owner, key, request_hash, status, name, etag)
        SELECT 'widgets', p_subject::text, p_key, p_request_hash,
               CASE WHEN i.etag IS NULL THEN 409 ELSE 201 END, p_name, i.etag
        FROM gate LEFT JOIN inserted i ON true
        WHERE gate.free
        ON CONFLICT (scope, owner, key) DO UPDATE
            SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
                name = EXCLUDED.name, etag = EXCLUDED.etag, created_at = EXCLUDED.created_at
            WHERE k.created_at <= now() - interval '24 hours'
        RETURNING status
    ), purged AS (
        DELETE FROM idempotency_keys
        WHERE (scope, owner, key) IN (
            SELECT scope, owner, key FROM idempotency_keys
            WHERE created_at <= now() - interval '24 hours'
            ORDER BY created_at
            LIMIT 100)
          AND NOT (scope = 'widgets' AND owner = p_subject::text AND key = p_key)
          AND EXISTS (SELECT 1 FROM gate WHERE free)
    )
    SELECT c.revoked, c.admin,
           p.request_hash AS prior_hash, p.status AS prior_status, p.name AS prior_name,
           p.etag AS prior_etag,
           (SELECT free FROM gate) AS free,
           (SELECT etag FROM inserted) AS etag,
           CASE WHEN (SELECT free FROM gate) AND NOT EXISTS (SELECT 1 FROM recorded)
                THEN idempotency_key_raced() END AS raced
    FROM c LEFT JOIN prior p ON true;
END
$$;
