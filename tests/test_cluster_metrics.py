"""``bin/cluster``'s monitoring (issue 19): Prometheus scrapes every part, every target is ``up``,
``rate(http_requests_total[1m])`` is non-empty through its HTTP API, the alert rules are loaded,
and the public front answers 404 for ``/metrics``. The run's one cluster (tests/conftest.py's
``cluster_dir``); that ``down`` stops the monitoring too is tests/test_cluster.py's last test."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers_cluster import CLUSTER
from tests.helpers_cluster import run as cluster_run
from tests.live_http import call
from widgetsvc.ops import plumbing
from widgetsvc.ops.cluster import monitoring
from widgetsvc.ops.cluster.hacluster import HACluster
from widgetsvc.ops.cluster.state import NODES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JOBS = {"widgetsvc": 2, "nginx": 1, "postgres": 2, "patroni": 2, "node": 1, "prometheus": 1}


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return cluster_run(CLUSTER, *args, timeout=timeout)


def api(base: str, path: str, **params: str) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{base}/api/v1/{path}{query}", timeout=10) as resp:  # noqa: S310
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def wait_for(check, timeout: float, what: str):
    """``check()``'s first truthy value; its last value in the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} after {timeout:.0f} s: {value!r}")
        time.sleep(1)


def test_prometheus_sees_every_target_up_and_a_request_rate(cluster_dir: Path):
    info = json.loads(run("--dir", str(cluster_dir), "status", "--json").stdout)
    prometheus = info["prometheus"]
    assert prometheus.startswith("http://127.0.0.1:")
    front = urllib.parse.urlsplit(info["front"]).port

    def targets() -> dict[str, list[str]]:
        by_job: dict[str, list[str]] = {}
        for target in api(prometheus, "targets")["activeTargets"]:
            by_job.setdefault(target["labels"]["job"], []).append(target["health"])
        return by_job

    def all_up():
        found = targets()
        ok = ({job: len(h) for job, h in found.items()} == JOBS
              and all(h == "up" for healths in found.values() for h in healths))
        return ok and found or None

    wait_for(all_up, 120, f"every target up ({JOBS})")

    # Traffic through the front for a few scrapes (5 s apart), then a non-empty rate.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert call(front, "GET", "/api/v1/health").status == 200
        time.sleep(0.1)

    def rate():
        result = api(prometheus, "query", query="rate(http_requests_total[1m])")["result"]
        return [r for r in result if float(r["value"][1]) > 0] or None

    rates = wait_for(rate, 90, "a non-zero rate(http_requests_total[1m])")
    routes = {r["metric"]["route"] for r in rates}
    assert "/api/v1/health" in routes
    assert {r["metric"]["instance"] for r in rates} <= {
        f"127.0.0.1:{port}" for port in HACluster(cluster_dir).state["ports"]["metrics"]}

    # nginx's connections (stub_status through its exporter), each server's PostgreSQL, and
    # Patroni's sync standby: the series the alerts need are there.
    for query in ("nginx_connections_accepted", "pg_up", "patroni_sync_standby",
                  "node_filesystem_avail_bytes", "db_pool_connections", "auth_hash_slots"):
        assert api(prometheus, "query", query=query)["result"], query
    # One sync standby; after tests/test_cluster.py's failovers, once both Patronis were
    # scraped in their present roles (a scrape every 5 s).
    # A series per node and no more: a Patroni on a new port would leave its old series.
    def sync_standbys():
        series = api(prometheus, "query", query="patroni_sync_standby")["result"]
        return (len(series) == len(NODES)
                and sum(float(r["value"][1]) for r in series) == 1) or None

    try:
        wait_for(sync_standbys, 60, "exactly one patroni_sync_standby")
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc}\n{sync_picture(prometheus, cluster_dir)}")


def sync_picture(prometheus: str, cluster_dir: Path) -> str:
    """What Prometheus holds, what each Patroni says of itself and of its cluster, and the
    end of its log: enough to tell a stale scrape from a standby that is not there."""
    lines = [f"prometheus: {api(prometheus, 'query', query='patroni_sync_standby')['result']}"]
    cluster = HACluster(cluster_dir)
    for index, node in enumerate(NODES):
        rest = cluster.rest_url(index)
        for path in ("/patroni", "/cluster", "/metrics"):
            try:
                with urllib.request.urlopen(f"{rest}{path}", timeout=5) as resp:  # noqa: S310
                    text = resp.read().decode()
            except OSError as exc:
                text = repr(exc)
            if path == "/metrics":
                text = "\n".join(line for line in text.splitlines() if "sync" in line)
            lines.append(f"{node} {path}: {text}")
        lines.append(plumbing.tail(cluster.node_dir(node) / "patroni.log", 40))
    return "\n".join(lines)


def test_alert_rules_are_loaded(cluster_dir: Path):
    prometheus = json.loads(run("--dir", str(cluster_dir), "status", "--json").stdout)[
        "prometheus"]
    names = {rule["name"] for group in api(prometheus, "rules")["groups"]
             for rule in group["rules"]}
    assert names == {"InstanceDown", "HighErrorRatio", "HighLatencyP99", "HashSlotsSaturated",
                     "ReplicationLag", "NoSyncStandby", "DiskAlmostFull"}


def test_the_front_answers_404_for_metrics_and_stub_status(cluster_dir: Path):
    front = urllib.parse.urlsplit(HACluster(cluster_dir).front_url).port
    for path in ("/metrics", "/stub_status", "/api/v1/metrics"):
        assert call(front, "GET", path).status == 404, path


def test_prometheus_takes_a_changed_configuration_in_place(cluster_dir: Path):
    """``up`` reloads Prometheus (SIGHUP) rather than restarting it: the same process, its
    new files loaded (``Prometheus.reload`` waits for Prometheus's own reload timestamp)."""
    cluster = HACluster(cluster_dir)
    prometheus = monitoring.Prometheus(cluster)
    pid = cluster.pid("prometheus")
    before = prometheus._reload_metrics()
    prometheus.reload()
    after = prometheus._reload_metrics()
    assert cluster.pid("prometheus") == pid
    key = "prometheus_config_last_reload_success_timestamp_seconds"
    assert after[key] > before[key] and after["prometheus_config_last_reload_successful"] == 1
