-- name: revoke_token
-- Logout: revokes the token and its session and, in the same statement, purges up to 100
-- expired revocations, so the table stays small with a bounded cost per logout.
WITH purged AS (
    DELETE FROM revoked_tokens
    WHERE jti IN (
        SELECT jti FROM revoked_tokens
        WHERE expires_at < now()
        ORDER BY expires_at
        LIMIT 100
    )
), session_revoked AS (
    UPDATE sessions SET revoked_at = now()
    WHERE id = %(session_id)s AND revoked_at IS NULL
)
INSERT INTO revoked_tokens (jti, expires_at)
VALUES (%(jti)s, %(expires_at)s)
ON CONFLICT (jti) DO NOTHING;

-- name: purge_revoked_tokens
DELETE FROM revoked_tokens WHERE expires_at < now();
