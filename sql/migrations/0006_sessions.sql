-- Sessions (docs/API.md §8.4) and disabled users (§8.5); the caller check learns both.
--
-- A login or register starts one session; its access tokens carry its id (`sid`), and its
-- current refresh token is stored only as a SHA-256 hash (the token is 32 random bytes, so a
-- fast hash is enough and refreshing costs no bcrypt). Refreshing rotates that hash; the old
-- one moves to spent_refresh_tokens so that presenting it again is recognised as a reuse.
-- Revoking a session (logout, logout-all, password change, disabling the user, a reuse) sets
-- revoked_at: every access token of it fails the caller check on its next request.
--
-- Apply together with the code that ships with it: token_caller changes its signature, and
-- tokens without `kid` and `sid` (issued by older versions) are no longer accepted.

ALTER TABLE users ADD COLUMN disabled boolean NOT NULL DEFAULT false;

-- GET /users pages through users in registration order.
CREATE INDEX users_registered_on_idx ON users (registered_on, id);

CREATE TABLE sessions (
    id           uuid        PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_hash bytea       NOT NULL UNIQUE CHECK (length(refresh_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- When the current refresh token expires; every access token of the session expires
    -- before it (REFRESH_TOKEN_LIFETIME >= TOKEN_LIFETIME), so a row is purged only once
    -- nothing can refer to it any more.
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

-- Revoking every session of a user (logout-all, password change, disable).
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
-- Purging expired sessions scans this index, never the table.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Refresh tokens already exchanged. No foreign key to sessions on purpose: a session's spent
-- tokens all expire no later than the session itself, each is purged on its own (a bounded
-- number per refresh), and deleting a session must not cascade over thousands of them.
CREATE TABLE spent_refresh_tokens (
    hash       bytea       PRIMARY KEY CHECK (length(hash) = 32),
    session_id uuid        NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX spent_refresh_tokens_expires_at_idx ON spent_refresh_tokens (expires_at);

-- The caller check, now also asking whether the token's session is alive and its user
-- enabled. Still a plain, non-strict, STABLE SQL function whose body is one SELECT, so that
-- PostgreSQL inlines it into each calling query (index lookups on users.public_id,
-- sessions.id and revoked_tokens.jti; no function scan).
DROP FUNCTION token_caller(uuid, text);

CREATE FUNCTION token_caller(subject uuid, token_id text, session_id uuid)
RETURNS TABLE (
    id            bigint,
    public_id     uuid,
    email         text,
    admin         boolean,
    registered_on timestamptz,
    revoked       boolean
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT u.id, u.public_id, u.email, u.admin, u.registered_on,
           u.disabled
           -- uncorrelated, so always the primary-key lookup (never a walk over the user's
           -- sessions); NULL when the session is revoked or gone, and never another user's
           OR (SELECT s.user_id FROM sessions s
               WHERE s.id = token_caller.session_id AND s.revoked_at IS NULL)
              IS DISTINCT FROM u.id
           OR EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = token_caller.token_id)
    FROM users u
    WHERE u.public_id = token_caller.subject
$$;
