"""A PostgreSQL outage under the real ``bin/serve``: clear 503s while it is down, and the same
gunicorn recovers by itself once it is back (issue 5).

The outage is staged on a cluster of its own, so the session's cluster is never stopped.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.helpers import API, PASSWORD, LiveServer
from tests.live_http import Reply, call
from widgetsvc.ops.localdb import VAR_DIR, PrivatePostgres
from widgetsvc.ops.migrate import migrate

pytestmark = pytest.mark.e2e

BOUND = 5.0  # seconds: a bound on each answer during the outage, not a benchmark
TRACEBACK_MARKERS = ("Traceback", "psycopg", "OperationalError", "PoolTimeout", 'File "')


@pytest.fixture
def outage_cluster():
    cluster = PrivatePostgres(VAR_DIR / f"outage-{os.getpid()}")
    try:
        cluster.start()
        url = cluster.create_database("widgetsvc_outage")
        migrate(url, log=lambda _msg: None)
        yield cluster, url
    finally:
        cluster.destroy()


@pytest.fixture
def outage_server(outage_cluster, tmp_path):
    cluster, url = outage_cluster
    server = LiveServer(url, tmp_path / "serve.log").start()
    try:
        yield cluster, server
    finally:
        server.stop()


def assert_unavailable(reply: Reply, what: str) -> None:
    assert reply.status == 503, (what, reply.status, reply.text)
    assert reply.seconds < BOUND, (what, reply.seconds)
    assert reply.headers.get("Retry-After", "").isdigit(), (what, dict(reply.headers))
    assert int(reply.headers["Retry-After"]) > 0
    for marker in TRACEBACK_MARKERS:
        assert marker not in reply.text, (what, reply.text)


def wait_until(predicate, timeout: float) -> float:
    """Poll ``predicate`` until true; return the seconds it took, fail after ``timeout``."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        last = predicate()
        if last is True:
            return time.monotonic() - started
        time.sleep(0.1)
    pytest.fail(f"not true within {timeout} s; last answer: {last!r}")


def test_database_outage_answers_503_then_recovers_without_restart(outage_server):
    cluster, server = outage_server
    email = f"outage-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": PASSWORD}

    registered = call(server, "POST", f"{API}/auth/register", data=credentials)
    assert registered.status == 201, registered.text
    token = registered.json["access_token"]
    assert call(server, "GET", f"{API}/auth/user", token=token).status == 200
    assert call(server, "GET", f"{API}/health").json == {"status": "ok", "database": "ok"}
    pid = server.proc.pid

    cluster.stop()
    assert not cluster.is_running()

    # Every worker and every pooled connection sees the outage: ask each kind several times.
    for _ in range(2):
        me = call(server, "GET", f"{API}/auth/user", token=token)
        assert_unavailable(me, "GET /auth/user")
        assert set(me.json) == {"message"} and me.json["message"]

        widgets = call(server, "GET", f"{API}/widgets", token=token)
        assert_unavailable(widgets, "GET /widgets")
        assert set(widgets.json) == {"message"} and widgets.json["message"]

        login = call(server, "POST", f"{API}/auth/login", data=credentials)
        assert_unavailable(login, "POST /auth/login")
        assert set(login.json) == {"message"} and login.json["message"]

        health = call(server, "GET", f"{API}/health")
        assert_unavailable(health, "GET /health")
        assert health.json == {"status": "unavailable", "database": "unreachable"}

    assert server.proc.poll() is None, "gunicorn died during the outage"
    cluster.start()

    def recovered() -> bool | tuple:
        replies = (
            call(server, "GET", f"{API}/health", timeout=BOUND),
            call(server, "GET", f"{API}/auth/user", token=token, timeout=BOUND),
            call(server, "GET", f"{API}/widgets", token=token, timeout=BOUND),
            call(server, "POST", f"{API}/auth/login", data=credentials, timeout=BOUND),
        )
        statuses = tuple(r.status for r in replies)
        return statuses == (200, 200, 200, 200) or statuses

    wait_until(recovered, BOUND)
    # Recovered for good, on every worker (two workers, several tries), by the same gunicorn.
    for _ in range(6):
        assert call(server, "GET", f"{API}/widgets", token=token).status == 200
        assert call(server, "GET", f"{API}/health").json == {"status": "ok", "database": "ok"}
    assert server.proc.poll() is None and server.proc.pid == pid
    assert "Traceback" not in server.log()
