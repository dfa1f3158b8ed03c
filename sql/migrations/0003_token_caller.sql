-- Who is calling: the one definition of the database half of authentication, shared by the
-- `authenticate` query and by the reads that check their caller in the same statement as they
-- read (one round trip per request instead of two).
--
-- No row when the token's user no longer exists; `revoked` when the token was logged out.
-- A plain, non-strict, STABLE SQL function whose body is one SELECT: PostgreSQL inlines it
-- into each calling query, so the planner sees (and EXPLAIN shows) the index lookups on
-- users.public_id and revoked_tokens.jti, exactly as if the SELECT were written in place.
CREATE FUNCTION token_caller(subject uuid, token_id text)
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
           EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = token_caller.token_id)
    FROM users u
    WHERE u.public_id = token_caller.subject
$$;
