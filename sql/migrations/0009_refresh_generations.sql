-- Refresh tokens that name their session and generation (docs/API.md §8.4), so that storage
-- grows with live sessions, not with refreshes.
--
-- A refresh token now carries its session id, the session's refresh generation, 16 random
-- bytes and a MAC under a server key (widgetsvc/auth/sessions.py). The session row keeps the
-- current generation and, in refresh_hash, the SHA-256 of the current token's random part; a
-- refresh bumps the generation in place. An older generation of a live session, signed by the
-- server, is recognised as a reuse from the token alone: no spent row is written any more.
--
-- Tokens issued before this migration (43 characters; refresh_hash is the SHA-256 of their
-- text) sit at generation 0 and keep working: a refresh rotates them into the new format and
-- records the old hash in spent_refresh_tokens one last time (one row per legacy session at
-- most), so their reuse is still detected. That table then only empties as those rows expire
-- (bin/purge-revoked, or up to 100 per legacy refresh).
--
-- A constant default: no table rewrite, the migration is instant on a large sessions table.
ALTER TABLE sessions ADD COLUMN refresh_generation bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN sessions.refresh_hash IS
    'SHA-256 of the current refresh token''s random part (legacy rows: of the whole token text)';
COMMENT ON COLUMN sessions.refresh_generation IS
    'the current refresh token''s generation; older generations of a live session are reuses';
