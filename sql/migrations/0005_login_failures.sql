-- Failed logins, one row each, per lower-cased e-mail (registered or not), for the per-account
-- lock of docs/API.md §8.1: 5 failures within 15 minutes lock that e-mail until the oldest of them
-- leaves the window. Rows older than the window are purged in bounded batches by every failed
-- login (and all at once by bin/purge-revoked).
CREATE TABLE login_failures (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_key text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX login_failures_email_key ON login_failures (email_key, failed_at DESC);
CREATE INDEX login_failures_failed_at ON login_failures (failed_at);
