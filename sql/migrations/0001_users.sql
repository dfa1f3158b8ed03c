-- Users and revoked access tokens.
-- Migration files hold no BEGIN/COMMIT: bin/migrate wraps each one in a transaction.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id     uuid        NOT NULL UNIQUE,
    email         text        NOT NULL CHECK (length(email) BETWEEN 3 AND 255),
    password_hash text        NOT NULL,
    admin         boolean     NOT NULL DEFAULT false,
    registered_on timestamptz NOT NULL DEFAULT now()
);

-- E-mails are unique and matched case-insensitively, but stored as given.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE revoked_tokens (
    jti        text        PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 64),
    expires_at timestamptz NOT NULL
);

-- Purging expired revocations scans this index, never the table.
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
