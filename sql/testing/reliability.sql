-- Used only by the reliability tests (tests/test_concurrency_no_loss.py): what the database
-- really holds after a burst of parallel writes, read beside what the API says.

-- name: reliability_widgets
SELECT name, info_url FROM widgets ORDER BY id;

-- name: reliability_revoked_count
SELECT count(*) AS revoked FROM revoked_tokens;
