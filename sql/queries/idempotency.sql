-- name: insert_widget_idempotent
-- POST /widgets with an Idempotency-Key (docs/API.md §8.8), in one statement with its caller
-- check like insert_widget (insert_widget_idempotent(), migration 0015). `prior_*`: the key's
-- outcome kept in the last 24 hours (a replay, or a 422 when `prior_hash` is not this
-- request's): nothing is written then. Otherwise `free` false: the first request is still in
-- flight (the 409); else `etag` the widget inserted (NULL: the name is taken, its 409).
SELECT revoked, admin, prior_hash, prior_status, prior_name, prior_etag, free, etag, raced
FROM insert_widget_idempotent(%(subject)s, %(token_id)s, %(session_id)s, %(name)s,
                              %(info_url)s, %(deadline)s, %(key)s, %(request_hash)s,
                              %(lock_id)s);

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
