"""``bin/cluster``'s monitoring (issue 19): Prometheus scrapes every part, every target is ``up``,
``rate(http_requests_total[1m])`` is non-empty through its HTTP API, the alert rules are loaded,
and the public front answers 404 for ``/metrics``. A cluster of its own (2 instances), brought up
once for this module and purged at its end (about a minute and a half on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.live_http import call
from widgetsvc.ops.cluster.hacluster import HACluster
from widgetsvc.ops.cluster.packages import missing_packages
from widgetsvc.ops.localdb import REPO_ROOT, VAR_DIR, reachable_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLUSTER = str(REPO_ROOT / "bin" / "cluster")
ENV = {**os.environ, "SECRET_KEY": "cluster-metrics-secret-that-is-long-enough-0123456789",
       "WIDGETSVC_ENV": "test", "BCRYPT_ROUNDS": "4", "AUTH_RATE_LIMIT": "0",
       "WEB_CONCURRENCY": "2"}
JOBS = {"widgetsvc": 2, "nginx": 1, "postgres": 2, "patroni": 2, "node": 1, "prometheus": 1}


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([CLUSTER, *args], env=ENV, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{args}: {result.returncode}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def cluster_dir():
    if os.geteuid() != 0 and missing_packages():
        pytest.skip(f"not root, and {', '.join(missing_packages())} not installed")
    directory = reachable_dir(VAR_DIR / f"cluster-metrics-{os.getpid()}")
    try:
        run("--dir", str(directory), "up", "--instances", "2")
        yield directory
    finally:
        subprocess.run([CLUSTER, "--dir", str(directory), "down", "--purge"], env=ENV,
                       capture_output=True, timeout=300, check=False)


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
    assert sum(float(r["value"][1]) for r in api(
        prometheus, "query", query="patroni_sync_standby")["result"]) == 1


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


def test_down_stops_the_monitoring_too(cluster_dir: Path):
    cluster = HACluster(cluster_dir)
    groups = [int(cluster.pids[name][0]) for name in
              ("prometheus", "nginx-exporter", "node-exporter", "postgres-exporter-pg1",
               "postgres-exporter-pg2")]
    run("--dir", str(cluster_dir), "down")
    for pgid in groups:
        assert not any(
            Path(f"/proc/{p}/stat").exists() and
            Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[2] == str(pgid)
            for p in os.listdir("/proc") if p.isdigit()), pgid
