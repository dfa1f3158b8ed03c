"""Prometheus metrics (issue 19; docs/operations.md): exact counts per route and status from the
real gunicorn workers, on their own listener, never on the public front; the alert rules pass
``promtool``."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import API, PASSWORD, LiveServer, unique_email
from tests.live_http import call
from widgetsvc.ops import plumbing
from widgetsvc.ops.localdb import REPO_ROOT

pytestmark = pytest.mark.e2e


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items: value}, from the metrics listener."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture
def metered(database_url, db, tmp_path):
    """bin/serve (nginx + 2 gunicorn workers) with its metrics listener on a free port."""
    port = plumbing.free_port()
    server = LiveServer(database_url, tmp_path / "serve.log", METRICS_PORT=str(port)).start()
    server.metrics_port = port
    yield server
    server.stop()


def test_metrics_show_the_exact_count_per_route_and_status(metered, users):
    """A known mix of requests, spread over both workers: the sums are exact, the route is the
    template (never the raw path), and requests no route matched are one ``unmatched`` route."""
    email = unique_email()
    expected: Counter = Counter()

    def send(method: str, path: str, route: str, status: int, **kwargs):
        reply = call(metered, method, f"{API}{path}", **kwargs)
        assert reply.status == status, (method, path, reply.status, reply.raw[:300])
        expected[(method, route, str(status))] += 1
        return reply

    token = send("POST", "/auth/register", "/api/v1/auth/register", 201,
                 data={"email": email, "password": PASSWORD}).json["access_token"]
    for _ in range(2):
        send("POST", "/auth/login", "/api/v1/auth/login", 401,
             data={"email": email, "password": PASSWORD + "x"})
    send("POST", "/auth/login", "/api/v1/auth/login", 200,
         data={"email": email, "password": PASSWORD})
    send("POST", "/auth/refresh", "/api/v1/auth/refresh", 401,
         data={"refresh_token": "not-one-of-ours"})
    send("POST", "/widgets", "/api/v1/widgets", 403, token=token,
         data={"name": "m9", "info_url": "https://example.com", "deadline": "2099-01-01"})
    admin = unique_email()
    users.create(admin, PASSWORD, admin=True)
    admin_token = send("POST", "/auth/login", "/api/v1/auth/login", 200,
                       data={"email": admin, "password": PASSWORD}).json["access_token"]
    for index in range(3):
        send("POST", "/widgets", "/api/v1/widgets", 201, token=admin_token,
             data={"name": f"m{index}", "info_url": "https://example.com",
                   "deadline": "2099-01-01"})
    for index in range(7):
        send("GET", f"/widgets/m{index % 3}", "/api/v1/widgets/{name}", 200, token=token)
    for name in ("nope1", "nope2"):
        send("GET", f"/widgets/{name}", "/api/v1/widgets/{name}", 404, token=token)
    send("GET", "/widgets/m0", "/api/v1/widgets/{name}", 401)
    send("GET", "/no/such/route", "unmatched", 404)

    found = scrape(metered.metrics_port)
    counted = {(dict(k)["method"], dict(k)["route"], dict(k)["status"]): v
               for k, v in found["http_requests_total"].items()}
    assert counted == dict(expected)
    durations = {(dict(k)["method"], dict(k)["route"]): v
                 for k, v in found["http_request_duration_seconds_count"].items()}
    assert durations[("GET", "/api/v1/widgets/{name}")] == 10
    buckets = {dict(k)["le"] for k in found["http_request_duration_seconds_bucket"]}
    assert {"0.001", "10.0", "+Inf"} <= buckets
    assert found["auth_login_failures_total"] == {(("outcome", "failure"),): 2.0}
    assert found["auth_refresh_total"] == {(("outcome", "invalid"),): 1.0}
    assert found["auth_hash_slots_busy"] == {(): 0.0}
    assert found["auth_hash_slots"] == {(): 16.0}  # LiveServer's HASH_SLOTS
    assert "process_resident_memory_bytes" in found


def test_pool_gauge_counts_the_workers_connections(metered):
    """``db_pool_connections``: every live worker's pool, added up (2 workers, DB_POOL_MIN 2)."""
    call(metered, "GET", f"{API}/health")
    deadline = time.monotonic() + 30
    while True:
        pool = {dict(k)["state"]: v
                for k, v in scrape(metered.metrics_port).get("db_pool_connections", {}).items()}
        if pool.get("in_use", 0) + pool.get("idle", 0) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(pool) == {"in_use", "idle", "waiting"}
    assert pool["in_use"] + pool["idle"] >= 4
    assert pool["waiting"] == 0


def test_the_public_front_answers_404_for_metrics(metered):
    for path in ("/metrics", f"{API}/metrics"):
        assert call(metered, "GET", path).status == 404
    # ...while the listener on 127.0.0.1:METRICS_PORT serves them
    assert "http_requests_total" in scrape(metered.metrics_port)


def test_the_workers_files_are_removed_when_it_stops(database_url, db, tmp_path):
    """gunicorn.conf.py's directory for the workers' values exists while it serves and is gone
    after: counters never carry over into the next start."""
    import tempfile

    def ours() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("widgetsvc-metrics-*"))

    before = ours()
    server = LiveServer(database_url, tmp_path / "serve.log",
                        METRICS_PORT=str(plumbing.free_port()))
    server.start()
    try:
        made = ours() - before
        assert len(made) == 1
        assert call(server, "GET", f"{API}/health").status == 200
        assert any(path.name.startswith("counter_") for path in next(iter(made)).iterdir())
    finally:
        server.stop()
    assert not made & ours()


def test_metrics_port_0_means_no_listener_and_a_busy_port_stops_the_start(database_url, db,
                                                                          tmp_path):
    server = LiveServer(database_url, tmp_path / "off.log", METRICS_PORT="0").start()
    try:
        assert call(server, "GET", f"{API}/health").status == 200
    finally:
        server.stop()
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = LiveServer(database_url, tmp_path / "busy.log", METRICS_PORT=str(port))
        with pytest.raises(RuntimeError, match=f"METRICS_PORT={port}: cannot listen"):
            busy.start()
        busy.stop()
    # Refused before gunicorn bound its socket, so bin/serve never started nginx in front of
    # it: a start that dies has never been reachable.
    assert "Listening at" not in busy.log()


RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO_ROOT / "deploy" / "prometheus" / "alerts_test.yml"


def _promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if not found:
        pytest.skip("promtool (Debian's prometheus) is not installed: bin/cluster up installs it")
    return found


def test_alert_rules_pass_promtool_check_rules():
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # every alert the issue names
    text = RULES.read_text()
    for alert in ("InstanceDown", "HighErrorRatio", "HighLatencyP99", "ReplicationLag",
                  "NoSyncStandby", "DiskAlmostFull", "HashSlotsSaturated"):
        assert f"alert: {alert}" in text


def test_alert_rules_fire_on_their_conditions():
    """promtool's rule unit tests: each alert fires on a series that breaks its rule, and not
    on a healthy one."""
    result = subprocess.run([_promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True,
                            text=True, check=False, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
