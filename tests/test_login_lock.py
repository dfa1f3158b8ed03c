"""The lock of failed logins, per e-mail and client address and per e-mail everywhere, and the
hashing slots (docs/API.md §8.1), through the app. The client address is WSGI's REMOTE_ADDR here.

End-to-end versions (real sockets, nginx, two instances, two source addresses) are in
tests/test_front_door.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid

import pytest
import webtest

from tests.helpers import API, PASSWORD, SECRET
from tests.helpers_sql import run_sql
from widgetsvc.app import create_app
from widgetsvc.auth import accounts, hashslots
from widgetsvc.config import Config, ConfigError
from widgetsvc.db import Database

LOGIN = f"{API}/auth/login"
REGISTER = f"{API}/auth/register"
PASSWORD_CHANGE = f"{API}/auth/password"
FAILED = {"status": "fail", "message": "email or password does not match"}
INCORRECT = {"message": "Input payload validation failed",
             "errors": {"current_password": "Password is incorrect."}}
ATTACKER = "192.0.2.66"
OWNER = "198.51.100.7"


def unique_email() -> str:
    return f"u{uuid.uuid4().hex[:10]}@example.com"


def make_config(database_url: str, **env: str) -> Config:
    return Config.from_env({
        "DATABASE_URL": database_url, "SECRET_KEY": SECRET, "WIDGETSVC_ENV": "test",
        "BCRYPT_ROUNDS": "4", **env,
    })


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """Every password check the login makes (the e-mails' hashes are not needed, just a count)."""
    calls: list[str] = []
    real = accounts.check_password

    def counting(password: str, stored: str) -> bool:
        calls.append(stored)
        return real(password, stored)

    monkeypatch.setattr(accounts, "check_password", counting)
    return calls


def at(address: str) -> dict:
    """WebTest's ``extra_environ`` for a request from ``address`` (the TCP peer)."""
    return {"REMOTE_ADDR": address}


def fail_login(app, email: str, times: int, address: str = ATTACKER) -> None:
    for _ in range(times):
        resp = app.post_json(LOGIN, {"email": email, "password": "Wrong-pass-1"}, status=401,
                             extra_environ=at(address))
        assert resp.json == FAILED


def log_in(app, email: str, address: str, status: int, password: str = PASSWORD):
    return app.post_json(LOGIN, {"email": email, "password": password}, status=status,
                         extra_environ=at(address))


def assert_locked(resp, window: int = 900) -> int:
    seconds = int(resp.headers["Retry-After"])
    assert 1 <= seconds <= window
    assert resp.json == {"status": "fail", "message":
                         f"Too many failed login attempts. Try again in {seconds} seconds."}
    return seconds


@pytest.mark.parametrize("registered", [True, False])
def test_five_failures_lock_the_email_right_password_too_without_a_hash(
        app, users_fixture_email, registered, hashes):
    email = users_fixture_email if registered else unique_email()
    fail_login(app, email, 5)
    assert len(hashes) == 5
    for password in ("Wrong-pass-1", PASSWORD):
        resp = log_in(app, email, ATTACKER, 429, password)
        assert assert_locked(resp) > 890
    # another case of the same e-mail is the same account
    resp = log_in(app, email.upper(), ATTACKER, 429, PASSWORD)
    assert_locked(resp)
    assert len(hashes) == 5, "a locked login must not cost a hash"


@pytest.fixture
def users_fixture_email(users) -> str:
    email = unique_email()
    users.create(email, PASSWORD, admin=False)
    return email


def test_four_failures_do_not_lock_and_a_success_resets_the_count(app, users_fixture_email):
    email = users_fixture_email
    fail_login(app, email, 4)
    log_in(app, email, ATTACKER, 200, PASSWORD)
    fail_login(app, email, 4)
    log_in(app, email, ATTACKER, 200, PASSWORD)


def test_invalid_input_does_not_count_and_is_answered_first(app, users_fixture_email):
    email = users_fixture_email
    for _ in range(6):
        log_in(app, email, ATTACKER, 400, "short")
    log_in(app, email, ATTACKER, 200, PASSWORD)
    fail_login(app, email, 5)
    # locked, but a 400 is still a 400 (validation comes before the lock)
    resp = log_in(app, email, ATTACKER, 400, "short")
    assert resp.json["message"] == "Input payload validation failed"


def test_other_emails_are_not_locked(app, users_fixture_email):
    fail_login(app, unique_email(), 5)
    log_in(app, users_fixture_email, ATTACKER, 200, PASSWORD)


def test_the_lock_ends_with_the_window(database_url, db, users_fixture_email):
    app = webtest.TestApp(create_app(make_config(database_url, LOGIN_LOCK_WINDOW="2"), db=db))
    email = users_fixture_email
    fail_login(app, email, 5)
    resp = log_in(app, email, ATTACKER, 429, PASSWORD)
    assert assert_locked(resp, window=2) <= 2
    time.sleep(2.2)
    log_in(app, email, ATTACKER, 200, PASSWORD)


def test_two_instances_on_one_database_share_the_count(database_url, db, users_fixture_email):
    config = make_config(database_url)
    other_db = Database(database_url, min_size=1, max_size=1)
    other_db.pool.open(wait=True, timeout=10)
    try:
        first = webtest.TestApp(create_app(config, db=db))
        second = webtest.TestApp(create_app(config, db=other_db))
        email = users_fixture_email
        fail_login(first, email, 3)
        fail_login(second, email, 2)
        for app in (first, second):
            resp = log_in(app, email, ATTACKER, 429, PASSWORD)
            assert_locked(resp)
    finally:
        other_db.close()


def test_expired_failures_are_purged_by_later_failures(database_url, db):
    app = webtest.TestApp(create_app(make_config(database_url, LOGIN_LOCK_WINDOW="1"), db=db))
    for _ in range(3):
        fail_login(app, unique_email(), 1)
    assert run_sql(db, "count_login_failures")[0]["n"] == 3
    time.sleep(1.2)
    fail_login(app, unique_email(), 1)
    assert run_sql(db, "count_login_failures")[0]["n"] == 1


# -- per address, and per account everywhere ---------------------------------------------------

def test_five_failures_from_one_address_lock_that_address_only(app, users_fixture_email, hashes):
    """The administrator's e-mail is public: an attacker's failures must not lock its owner out."""
    email = users_fixture_email
    fail_login(app, email, 5, ATTACKER)
    assert_locked(log_in(app, email, ATTACKER, 429))
    log_in(app, email, OWNER, 200)  # at once, from another address
    fail_login(app, email, 1, OWNER)  # the owner's own count starts at zero
    assert_locked(log_in(app, email, ATTACKER, 429))  # the owner's success resets only theirs
    assert len(hashes) == 5 + 1 + 1


def test_a_success_resets_the_count_of_its_address_only(app, users_fixture_email):
    email = users_fixture_email
    fail_login(app, email, 4, ATTACKER)
    fail_login(app, email, 4, OWNER)
    log_in(app, email, OWNER, 200)
    fail_login(app, email, 4, OWNER)  # 4 again from the owner: not locked
    fail_login(app, email, 1, ATTACKER)  # the attacker's 5th: locked
    assert_locked(log_in(app, email, ATTACKER, 429))
    log_in(app, email, OWNER, 200)


def test_a_direct_client_cannot_name_another_address(app, users_fixture_email):
    """A TCP peer's forwarding headers are not read: only the front's Unix-socket peer's are."""
    email = users_fixture_email
    for n in range(5):
        spoofed = {"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"203.0.113.{n}"}
        app.post_json(LOGIN, {"email": email, "password": "Wrong-pass-1"}, status=401,
                      headers=spoofed, extra_environ=at(ATTACKER))
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=429,
                  headers={"X-Forwarded-For": OWNER}, extra_environ=at(ATTACKER))
    log_in(app, email, OWNER, 200)


def test_behind_the_front_the_forwarded_address_is_the_client(app, users_fixture_email):
    """gunicorn's Unix-socket peer (REMOTE_ADDR empty) is the nginx front, which sets
    X-Forwarded-For to its client's address."""
    email = users_fixture_email
    front = {"REMOTE_ADDR": ""}
    for _ in range(5):
        app.post_json(LOGIN, {"email": email, "password": "Wrong-pass-1"}, status=401,
                      headers={"X-Forwarded-For": ATTACKER}, extra_environ=front)
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=429,
                  headers={"X-Forwarded-For": ATTACKER}, extra_environ=front)
    assert_locked(log_in(app, email, ATTACKER, 429))  # the same address, however it came
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=200,
                  headers={"X-Forwarded-For": OWNER}, extra_environ=front)


def test_a_tcp_front_in_forwarded_allow_ips_names_the_client(database_url, db,
                                                              users_fixture_email):
    """bin/cluster's nginx reaches its instances over TCP: FORWARDED_ALLOW_IPS names it, and
    only its X-Forwarded-For is read (another TCP peer's is not)."""
    app = webtest.TestApp(create_app(make_config(
        database_url, FORWARDED_ALLOW_IPS="10.9.0.0/16, 127.0.0.1"), db=db))
    email = users_fixture_email
    for _ in range(5):
        app.post_json(LOGIN, {"email": email, "password": "Wrong-pass-1"}, status=401,
                      headers={"X-Forwarded-For": ATTACKER}, extra_environ=at("10.9.1.1"))
    assert_locked(log_in(app, email, ATTACKER, 429))
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=200,
                  headers={"X-Forwarded-For": OWNER}, extra_environ=at("127.0.0.1"))
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=429,
                  headers={"X-Forwarded-For": OWNER}, extra_environ=at(ATTACKER))


@pytest.mark.parametrize("value", ["*", "10.0.0.1, front.example"])
def test_forwarded_allow_ips_must_be_addresses(database_url, value):
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
        make_config(database_url, FORWARDED_ALLOW_IPS=value)


@pytest.mark.parametrize("registered", [True, False])
def test_a_hundred_failures_everywhere_lock_every_address_but_known_ones(
        app, db, users_fixture_email, registered, hashes):
    email = users_fixture_email if registered else unique_email()
    if registered:
        log_in(app, email, OWNER, 200)  # the owner's address is now known
    run_sql(db, "login_lock_seed_failures", email=email, count=98)  # 98 attackers' addresses
    fail_login(app, email, 1, "203.0.113.1")  # the 99th: no lock yet, so a hash and a 401
    fail_login(app, email, 1, "203.0.113.2")  # the 100th
    hashes.clear()
    for address in ("203.0.113.1", "203.0.113.3"):  # an attacker's, and one never seen
        assert_locked(log_in(app, email, address, 429))
    assert hashes == [], "a locked login must not cost a hash"
    if registered:
        log_in(app, email, OWNER, 200)  # the known address is spared
        # ... but not once its last success is more than 30 days old
        run_sql(db, "login_lock_age_address", email=email, address=OWNER, age_days=31)
        assert_locked(log_in(app, email, OWNER, 429))


def test_the_account_lock_can_be_set_or_turned_off(database_url, db, users_fixture_email):
    email = users_fixture_email
    run_sql(db, "login_lock_seed_failures", email=email, count=10)
    strict = webtest.TestApp(create_app(
        make_config(database_url, LOGIN_LOCK_ACCOUNT_FAILURES="10"), db=db))
    assert_locked(log_in(strict, email, OWNER, 429))
    off = webtest.TestApp(create_app(make_config(
        database_url, LOGIN_LOCK_ACCOUNT_FAILURES="0", LOGIN_LOCK_FAILURES="0"), db=db))
    run_sql(db, "login_lock_seed_failures", email=email, count=200)
    log_in(off, email, OWNER, 200)


def test_known_addresses_stay_bounded(app, db, users_fixture_email):
    """At most 50 per user (the most recently used), and every success purges up to 100 that
    have not been used for 30 days, whoever's they are."""
    email, other = users_fixture_email, unique_email()
    app.post_json(REGISTER, {"email": other, "password": PASSWORD}, status=201)
    run_sql(db, "login_lock_seed_addresses", email=other, count=120, age_days=31)
    run_sql(db, "login_lock_seed_addresses", email=email, count=60, age_days=1)
    log_in(app, email, OWNER, 200)
    mine = [row["address"] for row in run_sql(db, "login_lock_addresses", email=email)]
    assert len(mine) == 50 and OWNER in mine
    assert len(run_sql(db, "login_lock_addresses", email=other)) == 20  # 100 purged
    log_in(app, email, OWNER, 200)
    assert run_sql(db, "login_lock_count_addresses")[0]["n"] == 50


@pytest.mark.e2e
def test_bin_purge_revoked_purges_addresses_unused_for_30_days(app, db, database_url,
                                                              users_fixture_email):
    from tests.test_revocation import run_purge
    email = users_fixture_email
    run_sql(db, "login_lock_seed_addresses", email=email, count=130, age_days=31)
    run_sql(db, "login_lock_age_address", email=email, address="10.3.0.1", age_days=29)
    done = run_purge(database_url)
    assert done.returncode == 0, done.stderr
    assert "purged 129 login address(es) unused for 30 days" in done.stdout.splitlines()
    assert [row["address"] for row in run_sql(db, "login_lock_addresses", email=email)] == [
        "10.3.0.1"]


# -- PUT /auth/password: a wrong current password is a failed login ---------------------------

def change_password(app, token: str, current: str, address: str, status: int):
    return app.put_json(PASSWORD_CHANGE, {"current_password": current,
                                          "new_password": "Changed-pass-2"},
                        headers={"Authorization": f"Bearer {token}"}, status=status,
                        extra_environ=at(address))


def test_wrong_current_passwords_count_and_lock_the_change_and_the_login(
        app, users_fixture_email, hashes):
    email = users_fixture_email
    token = log_in(app, email, OWNER, 200).json["access_token"]
    stolen = log_in(app, email, OWNER, 200).json["access_token"]  # a token an attacker holds
    for _ in range(5):
        assert change_password(app, stolen, "Wrong-pass-1", ATTACKER, 400).json == INCORRECT
    hashes.clear()
    # locked for that address: the right current password too, and logins, without a hash
    assert_locked(change_password(app, stolen, PASSWORD, ATTACKER, 429))
    assert_locked(log_in(app, email, ATTACKER, 429))
    assert hashes == []
    # a current password that breaks the rules is still the validation 400 (it comes first)
    assert change_password(app, stolen, "short", ATTACKER, 400).json == INCORRECT
    # the owner's address is not affected
    change_password(app, token, PASSWORD, OWNER, 200)


def test_wrong_current_passwords_and_logins_share_one_count(app, users_fixture_email):
    email = users_fixture_email
    token = log_in(app, email, OWNER, 200).json["access_token"]
    fail_login(app, email, 3, ATTACKER)
    change_password(app, token, "Wrong-pass-1", ATTACKER, 400)
    change_password(app, token, "Wrong-pass-1", ATTACKER, 400)
    assert_locked(log_in(app, email, ATTACKER, 429))
    # a password that breaks the rules could never be right: not counted, like a login's 400
    change_password(app, token, "short", OWNER, 400)
    for _ in range(4):
        change_password(app, token, "Wrong-pass-1", OWNER, 400)
    change_password(app, token, PASSWORD, OWNER, 200)


# -- hashing slots -----------------------------------------------------------------------------

BUSY = {"message": "Service Unavailable: too many logins in progress"}


def hold_all(slots: hashslots.HashSlots) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    for _ in range(slots.count):
        stack.enter_context(slots.hold())
    return stack


def test_no_free_slot_is_a_503_for_login_and_register(app, users_fixture_email):
    # the app's resources share one HashSlots: hold every slot of it
    slots = next(r for r in _resources(app) if hasattr(r, "slots")).slots
    locked = unique_email()
    fail_login(app, locked, 5)
    with hold_all(slots):
        for path, email in ((LOGIN, users_fixture_email), (REGISTER, unique_email())):
            resp = app.post_json(path, {"email": email, "password": PASSWORD}, status=503)
            assert resp.json == BUSY
            assert resp.headers["Retry-After"] == "1"
        # a locked e-mail gets its 429 first, and a bad input its 400 (docs/API.md §8's order)
        log_in(app, locked, ATTACKER, 429, PASSWORD)
        log_in(app, locked, ATTACKER, 400, "short")
    log_in(app, users_fixture_email, ATTACKER, 200, PASSWORD)


def _resources(app):
    router = app.app._router
    return [node.resource for node in _walk(router._roots)]


def _walk(nodes):
    for node in nodes:
        if node.resource is not None:
            yield node
        yield from _walk(node.children)


@pytest.mark.e2e
def test_slots_are_shared_between_processes(tmp_path):
    """Another process (another gunicorn worker) holding the only slot makes this one busy."""
    slots = hashslots.HashSlots(1, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(tmp_path / 'hash-slot-0')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(hashslots.APIError) as caught:
            with slots.hold():
                pass
        assert caught.value.body == BUSY
    finally:
        holder.communicate("")
    with slots.hold():  # free again once that process let go
        pass


def test_two_slots_in_one_process_allow_two_holders_not_three():
    slots = hashslots.HashSlots(2)
    with slots.hold(), slots.hold():
        with pytest.raises(hashslots.APIError):
            with slots.hold():
                pass
    with slots.hold():
        pass


def test_default_slots_leave_a_worker_and_a_core_free(database_url, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert make_config(database_url, WEB_CONCURRENCY="3").hash_slots == 1  # cores - 1
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert make_config(database_url, WEB_CONCURRENCY="3").hash_slots == 2  # workers - 1
    assert make_config(database_url, WEB_CONCURRENCY="1").hash_slots == 1
    assert make_config(database_url, WEB_CONCURRENCY="3", HASH_SLOTS="5").hash_slots == 5
