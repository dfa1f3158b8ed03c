-- name: count_login_failures
-- tests/test_login_lock.py: rows left after the bounded purge.
SELECT count(*) AS n FROM login_failures;

-- name: login_lock_seed_failures
-- tests/test_login_lock.py: `count` failed logins of an e-mail within the window, each from
-- its own address (10.2.x.y), as that many attackers would leave them.
INSERT INTO login_failures (email_key, address)
SELECT lower(%(email)s), '10.2.0.0'::inet + g FROM generate_series(1, %(count)s) AS g;

-- name: login_lock_seed_addresses
-- tests/test_login_lock.py: `count` remembered addresses (10.3.x.y) of a user, last used
-- `age_days` ago.
INSERT INTO login_addresses (user_id, address, last_success)
SELECT u.id, '10.3.0.0'::inet + g, now() - make_interval(days => %(age_days)s)
FROM users u, generate_series(1, %(count)s) AS g
WHERE lower(u.email) = lower(%(email)s);

-- name: login_lock_age_address
-- tests/test_login_lock.py: a remembered address as if last used `age_days` ago.
UPDATE login_addresses SET last_success = now() - make_interval(days => %(age_days)s)
WHERE address = %(address)s::inet
  AND user_id = (SELECT id FROM users WHERE lower(email) = lower(%(email)s));

-- name: login_lock_addresses
-- tests/test_login_lock.py: the addresses remembered for a user, as text.
SELECT host(a.address) AS address
FROM login_addresses a JOIN users u ON u.id = a.user_id
WHERE lower(u.email) = lower(%(email)s)
ORDER BY a.address;

-- name: login_lock_count_addresses
-- tests/test_login_lock.py: every remembered address, all users.
SELECT count(*) AS n FROM login_addresses;
