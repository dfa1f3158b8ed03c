"""Races on one widget name against the real server (gunicorn, several workers, real sockets).

The outcome is decided by PostgreSQL's unique constraint, not by the order requests arrive in.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import live_http
from tests.helpers import API, PASSWORD, LiveServer

pytestmark = pytest.mark.e2e

THREADS = 16
URL = "https://www.fakesite.com"
DEADLINE = "2099-01-01"


def call(server, method: str, path: str, body: dict | None = None,
         token: str | None = None) -> tuple[int, http.client.HTTPMessage, dict]:
    """(status, headers, JSON body or {}) of one request on its own connection."""
    reply = live_http.call(server.port, method, path, data=body, token=token)
    return reply.status, reply.headers, (json.loads(reply.raw) if reply.raw else {})


@pytest.fixture(params=["default", "threaded"])
def server(request, database_url, db, tmp_path):
    """The ``live_server`` fixture (2 sync workers), and a wider server (4 workers of 4
    threads each) so that more of the racing requests really run at the same time."""
    if request.param == "default":
        yield request.getfixturevalue("live_server")
        return
    wide = LiveServer(database_url, tmp_path / "serve-threaded.log", WEB_CONCURRENCY="4",
                      GUNICORN_WORKER_CLASS="gthread", GUNICORN_THREADS="4").start()
    yield wide
    wide.stop()


@pytest.fixture
def admin_token(server, users) -> str:
    users.create("racer@example.com", PASSWORD, admin=True)
    status, _, body = call(server, "POST", f"{API}/auth/login",
                           {"email": "racer@example.com", "password": PASSWORD})
    assert status == 200, body
    return body["access_token"]


def race(server, method: str, path: str, body: dict, token: str) -> list[tuple[int, dict]]:
    """THREADS identical requests released together."""
    barrier = threading.Barrier(THREADS)

    def one(_):
        barrier.wait(timeout=30)
        status, _headers, payload = call(server, method, path, body, token)
        return status, payload

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def listing(server, token: str) -> dict:
    status, headers, body = call(server, "GET", f"{API}/widgets?per_page=100", token=token)
    assert status == 200, body
    assert headers["Total-Count"] == str(body["total_items"])
    return body


def test_parallel_creates_of_one_name(server, admin_token):
    results = race(server, "POST", f"{API}/widgets",
                   {"name": "Contested", "info_url": URL, "deadline": DEADLINE}, admin_token)
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 409: THREADS - 1}, (statuses, server.log()[-3000:])
    for status, payload in results:
        if status == 201:
            assert payload == {"status": "success", "message": "New widget added: contested."}
        else:
            assert payload == {
                "status": "fail",
                "message": "Widget name: contested already exists, must be unique.",
            }
    body = listing(server, admin_token)
    assert body["total_items"] == 1
    assert [item["name"] for item in body["items"]] == ["contested"]


def test_parallel_puts_of_one_missing_name(server, admin_token):
    results = race(server, "PUT", f"{API}/widgets/Upserted",
                   {"info_url": URL, "deadline": DEADLINE}, admin_token)
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 200: THREADS - 1}, (statuses, server.log()[-3000:])
    for status, payload in results:
        if status == 201:
            assert payload == {"status": "success", "message": "New widget added: upserted."}
        else:
            assert payload == {
                "status": "success", "message": "'upserted' was successfully updated"
            }
    body = listing(server, admin_token)
    assert body["total_items"] == 1
    assert [item["name"] for item in body["items"]] == ["upserted"]
    status, _, item = call(server, "GET", f"{API}/widgets/upserted", token=admin_token)
    assert status == 200
    assert item["owner"]["email"] == "racer@example.com"


def test_parallel_creates_of_one_name_in_different_cases(server, admin_token):
    barrier = threading.Barrier(THREADS)
    spellings = ["mixed", "MIXED", "Mixed", "mIxEd"]

    def one(i):
        barrier.wait(timeout=30)
        body = {"name": spellings[i % len(spellings)], "info_url": URL, "deadline": DEADLINE}
        return call(server, "POST", f"{API}/widgets", body, admin_token)[0]

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = Counter(pool.map(one, range(THREADS)))
    assert statuses == {201: 1, 409: THREADS - 1}, (statuses, server.log()[-3000:])
    body = listing(server, admin_token)
    assert [item["name"] for item in body["items"]] == ["mixed"]


def test_parallel_creates_of_distinct_names_keep_the_exact_count(server, admin_token):
    barrier = threading.Barrier(THREADS)

    def one(i):
        barrier.wait(timeout=30)
        body = {"name": f"w{i:02d}", "info_url": URL, "deadline": DEADLINE}
        return call(server, "POST", f"{API}/widgets", body, admin_token)[0]

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = Counter(pool.map(one, range(THREADS)))
    assert statuses == {201: THREADS}, (statuses, server.log()[-3000:])
    body = listing(server, admin_token)
    assert body["total_items"] == THREADS
    assert sorted(item["name"] for item in body["items"]) == [f"w{i:02d}" for i in range(THREADS)]


def test_parallel_deletes_of_one_name(server, admin_token):
    for name in ("doomed", "kept"):
        status, _, payload = call(server, "POST", f"{API}/widgets",
                                  {"name": name, "info_url": URL, "deadline": DEADLINE},
                                  admin_token)
        assert status == 201, payload
    barrier = threading.Barrier(THREADS)

    def one(_):
        barrier.wait(timeout=30)
        return call(server, "DELETE", f"{API}/widgets/DOOMED", token=admin_token)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(one, range(THREADS)))
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {204: 1, 404: THREADS - 1}, (statuses, server.log()[-3000:])
    for status, _, payload in results:
        if status == 404:
            assert payload == {"status": "fail", "message": "doomed not found in database."}
        else:
            assert payload == {}
    body = listing(server, admin_token)
    assert body["total_items"] == 1
    assert [item["name"] for item in body["items"]] == ["kept"]
