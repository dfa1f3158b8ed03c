"""The per-account lock of failed logins and the hashing slots (docs/API.md §8.1), through the app.

End-to-end versions (real sockets, nginx, two instances) are in tests/test_front_door.py.
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
from widgetsvc.auth import hashslots, users
from widgetsvc.config import Config
from widgetsvc.db import Database

LOGIN = f"{API}/auth/login"
REGISTER = f"{API}/auth/register"
FAILED = {"status": "fail", "message": "email or password does not match"}


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
    real = users.check_password

    def counting(password: str, stored: str) -> bool:
        calls.append(stored)
        return real(password, stored)

    monkeypatch.setattr(users, "check_password", counting)
    return calls


def fail_login(app, email: str, times: int) -> None:
    for _ in range(times):
        resp = app.post_json(LOGIN, {"email": email, "password": "Wrong-pass-1"}, status=401)
        assert resp.json == FAILED


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
        resp = app.post_json(LOGIN, {"email": email, "password": password}, status=429)
        assert assert_locked(resp) > 890
    # another case of the same e-mail is the same account
    resp = app.post_json(LOGIN, {"email": email.upper(), "password": PASSWORD}, status=429)
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
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=200)
    fail_login(app, email, 4)
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=200)


def test_invalid_input_does_not_count_and_is_answered_first(app, users_fixture_email):
    email = users_fixture_email
    for _ in range(6):
        app.post_json(LOGIN, {"email": email, "password": "short"}, status=400)
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=200)
    fail_login(app, email, 5)
    # locked, but a 400 is still a 400 (validation comes before the lock)
    resp = app.post_json(LOGIN, {"email": email, "password": "short"}, status=400)
    assert resp.json["message"] == "Input payload validation failed"


def test_other_emails_are_not_locked(app, users_fixture_email):
    fail_login(app, unique_email(), 5)
    app.post_json(LOGIN, {"email": users_fixture_email, "password": PASSWORD}, status=200)


def test_the_lock_ends_with_the_window(database_url, db, users_fixture_email):
    app = webtest.TestApp(create_app(make_config(database_url, LOGIN_LOCK_WINDOW="2"), db=db))
    email = users_fixture_email
    fail_login(app, email, 5)
    resp = app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=429)
    assert assert_locked(resp, window=2) <= 2
    time.sleep(2.2)
    app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=200)


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
            resp = app.post_json(LOGIN, {"email": email, "password": PASSWORD}, status=429)
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
        app.post_json(LOGIN, {"email": locked, "password": PASSWORD}, status=429)
        app.post_json(LOGIN, {"email": locked, "password": "short"}, status=400)
    app.post_json(LOGIN, {"email": users_fixture_email, "password": PASSWORD}, status=200)


def _resources(app):
    router = app.app._router
    return [node.resource for node in _walk(router._roots)]


def _walk(nodes):
    for node in nodes:
        if node.resource is not None:
            yield node
        yield from _walk(node.children)


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
