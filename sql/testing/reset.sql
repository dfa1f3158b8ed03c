-- Used only by the test suite, between tests: empty every table the service writes.
-- name: reset_all
TRUNCATE widgets, revoked_tokens, users RESTART IDENTITY CASCADE;
