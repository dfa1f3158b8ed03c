"""Sessions and preconditions against the real server (gunicorn, several workers, real
sockets): racing refreshes of one refresh token, racing PUTs with one If-Match, and two
instances on one database honouring each other's revocations on the very next request."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import live_http
from tests.helpers import API, PASSWORD, LiveServer

pytestmark = pytest.mark.e2e

LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
USER = f"{API}/auth/user"
WIDGETS = f"{API}/widgets"
REUSED = {"status": "fail", "message": "Refresh token reused. Please log in again."}
INVALID_REFRESH = {"status": "fail", "message": "Invalid refresh token. Please log in again."}
BLACKLISTED = {"message": "Token blacklisted. Please log in again."}
LOGIN_FAILED = {"status": "fail", "message": "email or password does not match"}
DEADLINE = "2099-01-01"


def call(server, method, path, body=None, token=None, headers=None):
    reply = live_http.call(server.port, method, path, data=body, token=token, headers=headers)
    return reply.status, reply.headers, (json.loads(reply.raw) if reply.raw else {})


def log_in(server, email: str, password: str = PASSWORD) -> dict:
    status, _, body = call(server, "POST", LOGIN, {"email": email, "password": password})
    assert status == 200, body
    return body


def race(count: int, request) -> list:
    """``count`` calls of ``request`` released together."""
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait(timeout=30)
        return request()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture
def wide(database_url, db, tmp_path):
    """4 workers of 4 threads: most of the racing requests really run at the same time."""
    server = LiveServer(database_url, tmp_path / "serve-wide.log", WEB_CONCURRENCY="4",
                        GUNICORN_WORKER_CLASS="gthread", GUNICORN_THREADS="4").start()
    yield server
    server.stop()


def test_ten_parallel_refreshes_of_one_token(wide, users):
    users.create("racer@example.com", PASSWORD, admin=False)
    login = log_in(wide, "racer@example.com")
    results = race(10, lambda: call(wide, "POST", REFRESH,
                                    {"refresh_token": login["refresh_token"]}))
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: 1, 401: 9}, (statuses, wide.log()[-3000:])
    assert all(body == REUSED for status, _, body in results if status == 401)
    (winner,) = [body for status, _, body in results if status == 200]
    # the reuse revoked the session: the winner's new tokens too
    status, _, body = call(wide, "POST", REFRESH, {"refresh_token": winner["refresh_token"]})
    assert (status, body) == (401, INVALID_REFRESH)
    for token in (login["access_token"], winner["access_token"]):
        status, _, body = call(wide, "GET", USER, token=token)
        assert (status, body) == (401, BLACKLISTED)


def test_twenty_parallel_puts_with_one_if_match(wide, users):
    users.create("editor@example.com", PASSWORD, admin=True)
    token = log_in(wide, "editor@example.com")["access_token"]
    status, headers, _ = call(wide, "POST", WIDGETS, {"name": "contested", "info_url":
                                                      "https://www.example.com/0",
                                                      "deadline": DEADLINE}, token)
    assert status == 201
    tag = headers["ETag"]
    counter = iter(range(1, 21))
    lock = threading.Lock()

    def put():
        with lock:
            n = next(counter)
        url = f"https://www.example.com/{n}"
        status, headers, body = call(wide, "PUT", f"{WIDGETS}/contested",
                                     {"info_url": url, "deadline": DEADLINE}, token,
                                     {"If-Match": tag})
        return status, headers, body, url

    results = race(20, put)
    statuses = Counter(status for status, *_ in results)
    assert statuses == {200: 1, 412: 19}, (statuses, wide.log()[-3000:])
    failed = {"status": "fail", "message": "Precondition failed: contested has changed."}
    assert all(body == failed for status, _, body, _ in results if status == 412)
    ((_, winner_headers, _, winner_url),) = [r for r in results if r[0] == 200]
    status, headers, body = call(wide, "GET", f"{WIDGETS}/contested", token=token)
    assert body["info_url"] == winner_url
    assert headers["ETag"] == winner_headers["ETag"] != tag


@pytest.fixture
def two(database_url, db, tmp_path):
    """Two instances (two gunicorns) on one database."""
    first = LiveServer(database_url, tmp_path / "one.log").start()
    try:
        second = LiveServer(database_url, tmp_path / "two.log").start()
    except Exception:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def test_two_instances_honour_each_others_revocations(two, users):
    one, other = two
    users.create("admin@example.com", PASSWORD, admin=True)
    users.create("member@example.com", PASSWORD, admin=False)
    admin = log_in(one, "admin@example.com")["access_token"]

    # a refresh on one: the spent token is a reuse on the other, which revokes the session,
    # which the first instance honours on its next request
    session = log_in(one, "member@example.com")
    status, _, refreshed = call(one, "POST", REFRESH, {"refresh_token": session["refresh_token"]})
    assert status == 200
    assert call(other, "GET", USER, token=refreshed["access_token"])[0] == 200
    status, _, body = call(other, "POST", REFRESH, {"refresh_token": session["refresh_token"]})
    assert (status, body) == (401, REUSED)
    status, _, body = call(one, "GET", USER, token=refreshed["access_token"])
    assert (status, body) == (401, BLACKLISTED)

    # logout-all on one, honoured by the other
    a, b = log_in(one, "member@example.com"), log_in(other, "member@example.com")
    assert call(other, "POST", f"{API}/auth/logout-all", token=a["access_token"])[0] == 200
    for server in (one, other):
        for token in (a["access_token"], b["access_token"]):
            assert call(server, "GET", USER, token=token)[:3:2] == (401, BLACKLISTED)
    status, _, body = call(one, "POST", REFRESH, {"refresh_token": b["refresh_token"]})
    assert (status, body) == (401, INVALID_REFRESH)

    # a password change on one: the other session is cut on the other instance at once
    mine, theirs = log_in(one, "member@example.com"), log_in(other, "member@example.com")
    status, _, _ = call(one, "PUT", f"{API}/auth/password",
                        {"current_password": PASSWORD, "new_password": "Changed-pass-9"},
                        mine["access_token"])
    assert status == 200
    assert call(other, "GET", USER, token=theirs["access_token"])[:3:2] == (401, BLACKLISTED)
    assert call(other, "GET", USER, token=mine["access_token"])[0] == 200
    status, _, body = call(other, "POST", LOGIN, {"email": "member@example.com",
                                                  "password": PASSWORD})
    assert (status, body) == (401, LOGIN_FAILED)

    # a disable on one: the other refuses the user's token and login at once
    member = log_in(other, "member@example.com", "Changed-pass-9")
    public_id = call(other, "GET", USER, token=member["access_token"])[2]["public_id"]
    status, _, body = call(one, "PATCH", f"{API}/users/{public_id}", {"disabled": True}, admin)
    assert (status, body["disabled"]) == (200, True)
    assert call(other, "GET", USER, token=member["access_token"])[:3:2] == (401, BLACKLISTED)
    status, _, body = call(other, "POST", LOGIN, {"email": "member@example.com",
                                                  "password": "Changed-pass-9"})
    assert (status, body) == (401, LOGIN_FAILED)
    status, _, body = call(other, "POST", REFRESH, {"refresh_token": member["refresh_token"]})
    assert (status, body) == (401, INVALID_REFRESH)
