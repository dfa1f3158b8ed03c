"""Parallel clients against the real gunicorn: every acknowledged write is there exactly once,
every acknowledged delete is gone, every acknowledged logout revokes its token, and nothing
answers 5xx (issue 5)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.helpers import API, PASSWORD, REVOKED
from tests.helpers_sql import run_sql
from tests.live_http import call

pytestmark = pytest.mark.e2e

THREADS = 8
OPS_PER_THREAD = 40
TIME_LIMIT = 60.0  # seconds for the whole burst; it normally takes a few
ADMIN = "admin@example.com"
READER = "reader@example.com"


@dataclass
class Ledger:
    """What one client was told: the writes the server acknowledged, and anything wrong."""
    widgets: dict[str, str] = field(default_factory=dict)  # name -> last acknowledged info_url
    deleted: set[str] = field(default_factory=set)
    revoked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: int = 0


def client(server, number: int, ledger: Ledger, deadline: float) -> None:
    rng = random.Random(number)
    counter = 0

    def request(method, path, expected, **kwargs):
        ledger.requests += 1
        reply = call(server, method, path, **kwargs)
        if reply.status != expected:
            ledger.problems.append(f"{method} {path}: {reply.status} {reply.text[:200]}")
            return None
        return reply

    def login(email):
        reply = request("POST", f"{API}/auth/login", 200,
                        data={"email": email, "password": PASSWORD})
        return reply.json["access_token"] if reply else None

    def widget_data():
        nonlocal counter
        counter += 1
        return {"info_url": f"https://t{number}-v{counter}.example.org",
                "deadline": "2099-12-31"}

    token = login(ADMIN)
    for _ in range(OPS_PER_THREAD):
        if token is None or time.monotonic() > deadline:
            break
        present = sorted(ledger.widgets)
        op = rng.choice(["create", "create", "put_new", "put", "put", "delete", "get",
                         "relogin", "reader"])
        if op in ("put", "delete", "get") and not present:
            op = "create"
        if op == "create":
            name, data = f"t{number}-{counter}", widget_data()
            if request("POST", f"{API}/widgets", 201, token=token,
                       data={"name": name, **data}):
                ledger.widgets[name] = data["info_url"]
        elif op == "put_new":
            name, data = f"t{number}-p{counter}", widget_data()
            if request("PUT", f"{API}/widgets/{name}", 201, token=token, data=data):
                ledger.widgets[name] = data["info_url"]
        elif op == "put":
            name, data = rng.choice(present), widget_data()
            if request("PUT", f"{API}/widgets/{name}", 200, token=token, data=data):
                ledger.widgets[name] = data["info_url"]
        elif op == "delete":
            name = rng.choice(present)
            if request("DELETE", f"{API}/widgets/{name}", 204, token=token):
                del ledger.widgets[name]
                ledger.deleted.add(name)
        elif op == "get":
            name = rng.choice(present)
            reply = request("GET", f"{API}/widgets/{name}", 200, token=token)
            if reply and reply.json["info_url"] != ledger.widgets[name]:
                ledger.problems.append(f"GET {name}: stale {reply.json['info_url']}")
        elif op == "relogin":
            if request("POST", f"{API}/auth/logout", 200, token=token):
                ledger.revoked.append(token)
            token = login(ADMIN)
        else:  # a reader logs in, reads the list, logs out
            reader = login(READER)
            if reader:
                request("GET", f"{API}/widgets?per_page=5", 200, token=reader)
                if request("POST", f"{API}/auth/logout", 200, token=reader):
                    ledger.revoked.append(reader)


def all_widgets(server, token: str) -> tuple[list[dict], list[int]]:
    """Every widget, following the ``next`` links; and each page's ``total_items``."""
    items: list[dict] = []
    totals: list[int] = []
    path: str | None = f"{API}/widgets?page=1&per_page=100"
    while path:
        reply = call(server, "GET", path, token=token)
        assert reply.status == 200, reply.text
        body = reply.json
        items += body["items"]
        totals.append(body["total_items"])
        assert reply.headers["Total-Count"] == str(body["total_items"])
        path = body["links"].get("next")
        assert len(totals) < 100, "runaway pagination"
    return items, totals


def test_parallel_clients_lose_nothing(live_server, users, db):
    users.create(ADMIN, PASSWORD, admin=True)
    users.create(READER, PASSWORD, admin=False)
    ledgers = [Ledger() for _ in range(THREADS)]
    deadline = time.monotonic() + TIME_LIMIT
    threads = [
        threading.Thread(target=client, args=(live_server, n, ledgers[n], deadline))
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIME_LIMIT + 30)
    assert not any(thread.is_alive() for thread in threads)

    problems = [p for ledger in ledgers for p in ledger.problems]
    assert problems == [], problems[:20]
    assert sum(ledger.requests for ledger in ledgers) >= THREADS * OPS_PER_THREAD

    expected = {name: url for ledger in ledgers for name, url in ledger.widgets.items()}
    deleted = {name for ledger in ledgers for name in ledger.deleted} - set(expected)
    revoked = [token for ledger in ledgers for token in ledger.revoked]
    assert expected and deleted and revoked, "the workload did not exercise every write"

    check_token = call(live_server, "POST", f"{API}/auth/login",
                       data={"email": READER, "password": PASSWORD}).json["access_token"]
    items, totals = all_widgets(live_server, check_token)
    names = [item["name"] for item in items]
    assert len(names) == len(set(names)), "a widget is listed twice"
    assert set(names) == set(expected), (
        "missing:", sorted(set(expected) - set(names)),
        "unexpected:", sorted(set(names) - set(expected)),
    )
    assert set(totals) == {len(expected)}
    assert {item["name"]: item["info_url"] for item in items} == expected

    # The database holds exactly that, once each (not only what the API renders).
    stored = run_sql(db, "reliability_widgets")
    assert sorted((row["name"], row["info_url"]) for row in stored) == sorted(expected.items())
    assert run_sql(db, "reliability_revoked_count")[0]["revoked"] == len(revoked)

    for name in sorted(deleted):
        assert call(live_server, "GET", f"{API}/widgets/{name}",
                    token=check_token).status == 404, name
    for token in revoked:
        reply = call(live_server, "GET", f"{API}/auth/user", token=token)
        assert (reply.status, reply.json) == (401, {"message": REVOKED})
    assert "Traceback" not in live_server.log()
