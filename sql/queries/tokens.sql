-- name: revoke_token
-- Logout, in one statement with its caller check (see token_caller, migration 0006): no row
-- when the token's user is gone, else the caller's `revoked` (and `admin`). Only for a caller
-- who passes, it revokes the token and its session and purges up to 100 expired revocations,
-- so the table stays small with a bounded cost per logout.
WITH c AS (
    SELECT id, admin, revoked FROM token_caller(%(subject)s, %(token_id)s, %(session_id)s)
), live AS (
    SELECT id FROM c WHERE NOT revoked
), purged AS (
    DELETE FROM revoked_tokens
    WHERE jti IN (
        SELECT jti FROM revoked_tokens
        WHERE expires_at < now() AND EXISTS (SELECT 1 FROM live)
        ORDER BY expires_at
        LIMIT 100
    )
), session_revoked AS (
    UPDATE sessions s SET revoked_at = now()
    FROM live
    WHERE s.id = %(session_id)s AND s.user_id = live.id AND s.revoked_at IS NULL
), token_revoked AS (
    INSERT INTO revoked_tokens (jti, expires_at)
    SELECT %(token_id)s, %(expires_at)s FROM live
    ON CONFLICT (jti) DO NOTHING
)
SELECT c.revoked, c.admin FROM c;

-- name: purge_revoked_tokens
DELETE FROM revoked_tokens WHERE expires_at < now();
