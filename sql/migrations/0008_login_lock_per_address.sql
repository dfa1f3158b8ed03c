-- The failed-login lock per e-mail and client address (docs/API.md §8.1).
--
-- A lock per e-mail alone let anyone lock an administrator out from everywhere with 5 wrong
-- passwords (and administrators' e-mails are public). Failures now carry the client address:
-- 5 from one address lock that e-mail from that address only; 100 from all addresses together
-- lock it everywhere except from the addresses the account logged in from successfully within
-- the last 30 days, which login_addresses keeps (one row per user and address, purged in
-- bounded batches by every successful login and all at once by bin/purge-revoked).
--
-- Failures recorded before this migration get the address 0.0.0.0: they still count towards
-- the 100 of an account (for the rest of their window), never towards one address's 5.

ALTER TABLE login_failures ADD COLUMN address inet NOT NULL DEFAULT '0.0.0.0';
ALTER TABLE login_failures ALTER COLUMN address DROP DEFAULT;

-- The per-address count: the failures of one e-mail from one address, newest first.
CREATE INDEX login_failures_email_key_address
    ON login_failures (email_key, address, failed_at DESC);
-- (login_failures_email_key, on (email_key, failed_at DESC), serves the per-account count.)

CREATE TABLE login_addresses (
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address      inet        NOT NULL,
    last_success timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, address)
);

-- The bounded purge of addresses not used for a successful login within 30 days.
CREATE INDEX login_addresses_last_success ON login_addresses (last_success);

-- Seconds until logins for `for_email` from `from_address` are allowed again, or NULL when
-- they are now: `address_skip` = LOGIN_LOCK_FAILURES - 1 (NULL: no per-address lock),
-- `account_skip` = LOGIN_LOCK_ACCOUNT_FAILURES - 1 (NULL: no per-account lock). A lock lasts
-- until the failure that completed its count leaves the window; an address from which the
-- account logged in within `known_seconds` is spared the per-account lock. Both POST
-- /auth/login (login_lock) and PUT /auth/password (password_hash_and_lock) ask it, each in its
-- one statement.
CREATE FUNCTION login_lock_retry_after(for_email text, from_address inet, window_seconds int,
                                       address_skip int, account_skip int, known_seconds int)
RETURNS int
LANGUAGE plpgsql STABLE
-- plpgsql, not sql: its statement's plan is kept for the session (a sql function's is made
-- anew on every call, which cost ten times the lookup itself).
AS $$
BEGIN
    RETURN (
        WITH here AS (
            SELECT f.failed_at FROM login_failures f
            WHERE address_skip IS NOT NULL
              AND f.email_key = lower(for_email) AND f.address = from_address
              AND f.failed_at > now() - make_interval(secs => window_seconds)
            ORDER BY f.failed_at DESC
            OFFSET address_skip LIMIT 1
        ), everywhere AS (
            SELECT f.failed_at FROM login_failures f
            WHERE account_skip IS NOT NULL
              AND f.email_key = lower(for_email)
              AND f.failed_at > now() - make_interval(secs => window_seconds)
            ORDER BY f.failed_at DESC
            OFFSET account_skip LIMIT 1
        ), known AS (
            SELECT FROM users u JOIN login_addresses a ON a.user_id = u.id
            WHERE lower(u.email) = lower(for_email) AND a.address = from_address
              AND a.last_success > now() - make_interval(secs => known_seconds)
        ), lock_ends AS (
            SELECT failed_at FROM here
            UNION ALL
            SELECT failed_at FROM everywhere WHERE NOT EXISTS (SELECT FROM known)
        )
        SELECT greatest(1, ceil(extract(epoch FROM
                   max(failed_at) + make_interval(secs => window_seconds) - now())))::int
        FROM lock_ends
        HAVING count(*) > 0
    );
END
$$;
