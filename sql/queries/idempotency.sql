-- name: insert_widget_idempotent
-- POST /widgets with an Idempotency-Key (docs/API.md §8.8), in one statement with its caller
-- check like insert_widget. `prior_*`: the key's outcome kept in the last 24 hours (a replay,
-- or a 422 when `prior_hash` is not this request's): nothing is written then. Otherwise the
-- key's advisory lock is tried (`free` false: the first request is still in flight, the 409),
-- and with it held the widget is inserted (or found taken: its 409) and the outcome recorded
-- in the same statement, replacing a dead (24 h old) row of the key, with up to 100 other dead
-- rows purged. If the key was recorded by a request that committed after this statement's
-- snapshot, idempotency_key_raced() aborts the whole statement (nothing written; the 409).
WITH c AS (
    SELECT id, admin, revoked FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s)
), prior AS (
    SELECT k.request_hash, k.status, k.name, k.etag
    FROM idempotency_keys k
    WHERE k.scope = 'widgets' AND k.owner = %(subject)s::text AND k.key = %(key)s
      AND k.created_at > now() - interval '24 hours'
), gate AS MATERIALIZED (
    SELECT pg_try_advisory_xact_lock(%(lock_id)s) AS free
    FROM c
    WHERE c.admin AND NOT c.revoked AND NOT EXISTS (SELECT 1 FROM prior)
), inserted AS (
    INSERT INTO widgets (name, info_url, deadline, owner_id)
    SELECT %(name)s, %(info_url)s, %(deadline)s, c.id FROM c, gate
    WHERE gate.free
    ON CONFLICT (name) DO NOTHING
    RETURNING etag
), recorded AS (
    INSERT INTO idempotency_keys AS k (scope, owner, key, request_hash, status, name, etag)
    SELECT 'widgets', %(subject)s::text, %(key)s, %(request_hash)s,
           CASE WHEN i.etag IS NULL THEN 409 ELSE 201 END, %(name)s, i.etag
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
      AND NOT (scope = 'widgets' AND owner = %(subject)s::text AND key = %(key)s)
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

-- name: purge_idempotency_keys
-- bin/purge-revoked: every kept outcome older than 24 hours (docs/API.md §8.8).
DELETE FROM idempotency_keys WHERE created_at <= now() - interval '24 hours';

-- name: register_user_idempotent
-- POST /auth/register with an Idempotency-Key (docs/API.md §8.8), kept per key and e-mail:
-- like insert_widget_idempotent, either the kept outcome (`prior_*`, nothing written), or
-- `free` false (in flight: the 409), or register_user's user and first session written and
-- the outcome (201 with the session's ids, or the e-mail's 409) recorded in this statement.
WITH prior AS (
    SELECT k.request_hash, k.status, k.public_id, k.session_id, k.issued_at
    FROM idempotency_keys k
    WHERE k.scope = 'register' AND k.owner = lower(%(email)s) AND k.key = %(key)s
      AND k.created_at > now() - interval '24 hours'
), gate AS MATERIALIZED (
    SELECT pg_try_advisory_xact_lock(%(lock_id)s) AS free
    WHERE NOT EXISTS (SELECT 1 FROM prior)
), new_user AS (
    INSERT INTO users (public_id, email, password_hash, admin)
    SELECT %(public_id)s, %(email)s, %(password_hash)s, false FROM gate
    WHERE gate.free
    ON CONFLICT DO NOTHING
    RETURNING id, public_id, email, admin, registered_on
), new_session AS (
    INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
    SELECT %(session_id)s, id, %(refresh_hash)s, now() + make_interval(secs => %(lifetime)s)
    FROM new_user
    RETURNING id
), recorded AS (
    INSERT INTO idempotency_keys AS k
        (scope, owner, key, request_hash, status, public_id, session_id, issued_at)
    SELECT 'register', lower(%(email)s), %(key)s, %(request_hash)s,
           CASE WHEN u.id IS NULL THEN 409 ELSE 201 END,
           u.public_id, (SELECT id FROM new_session), %(issued_at)s
    FROM gate LEFT JOIN new_user u ON true
    WHERE gate.free
    ON CONFLICT (scope, owner, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
            name = NULL, etag = NULL, public_id = EXCLUDED.public_id,
            session_id = EXCLUDED.session_id, issued_at = EXCLUDED.issued_at,
            created_at = EXCLUDED.created_at
        WHERE k.created_at <= now() - interval '24 hours'
    RETURNING status
), purged AS (
    DELETE FROM idempotency_keys
    WHERE (scope, owner, key) IN (
        SELECT scope, owner, key FROM idempotency_keys
        WHERE created_at <= now() - interval '24 hours'
        ORDER BY created_at
        LIMIT 100)
      AND NOT (scope = 'register' AND owner = lower(%(email)s) AND key = %(key)s)
      AND EXISTS (SELECT 1 FROM gate WHERE free)
)
SELECT p.request_hash AS prior_hash, p.status AS prior_status,
       p.public_id AS prior_public_id, p.session_id AS prior_session_id,
       p.issued_at AS prior_issued_at,
       (SELECT free FROM gate) AS free,
       u.id, u.public_id, u.email, u.admin, u.registered_on,
       CASE WHEN (SELECT free FROM gate) AND NOT EXISTS (SELECT 1 FROM recorded)
            THEN idempotency_key_raced() END AS raced
FROM (SELECT 1) AS one
LEFT JOIN prior p ON true
LEFT JOIN new_user u ON true;
