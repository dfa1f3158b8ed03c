-- Idempotency-Key (docs/API.md §8.8): the outcome of the first request with a key, kept for
-- 24 hours so that a retry gets the same answer and changes nothing.
--
-- A row is written by the same statement as the write it records (insert_widget_idempotent,
-- register_user_idempotent), so a crash can never keep a key without its write or the reverse.
-- `scope` names the operation ('widgets', 'register'), `owner` whose key it is (the caller's
-- public id; for register the lower-cased e-mail), `request_hash` the SHA-256 of the request's
-- validated fields (a different body with the same key is a 422), `status` the answer kept;
-- `name`/`etag` (widgets) and `public_id`/`session_id`/`issued_at` (register: its tokens are
-- derived again from these and the server's keys, never stored) what the answer is rebuilt
-- from. Rows older than a day
-- are dead (a lookup ignores them, a new request with the key replaces them) and purged by
-- bin/purge-revoked and, a hundred at a time, by every recording statement.
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL CHECK (scope IN ('widgets', 'register')),
    owner        text        NOT NULL,
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea       NOT NULL CHECK (length(request_hash) = 32),
    status       smallint    NOT NULL,
    name         text,
    etag         uuid,
    public_id    uuid,
    session_id   uuid,
    issued_at    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, owner, key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- Raised by a recording statement that inserted its write but found the key taken by a request
-- that committed after the statement's snapshot (a few microseconds' window between the
-- snapshot and the advisory lock): the whole statement rolls back and the client gets the 409.
CREATE FUNCTION idempotency_key_raced() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'idempotency key recorded concurrently' USING ERRCODE = 'WI409';
END $$;
