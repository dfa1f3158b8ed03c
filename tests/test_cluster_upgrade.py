"""``bin/cluster upgrade`` (issue 19, upgrades): the instances are replaced one at a time behind
nginx while 8 clients create, read back and list widgets; no request fails (no 5xx, no
connection error) and every acknowledged widget is there afterwards. The drill is
``bin/failover upgrade`` (scripts/failover.py), run here as a user would. Its own cluster, up
once for this module and purged at its end (about 2 minutes on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.test_cluster import CLUSTER, ENV, FAILOVER, run
from widgetsvc.ops.cluster.packages import missing_packages
from widgetsvc.ops.localdb import VAR_DIR, reachable_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster_dir():
    if os.geteuid() != 0 and missing_packages():
        pytest.skip(f"not root, and {', '.join(missing_packages())} not installed")
    directory = reachable_dir(VAR_DIR / f"cluster-upgrade-{os.getpid()}")
    try:
        run(CLUSTER, "--dir", str(directory), "up", "--instances", "2", timeout=600)
        yield directory
    finally:
        run(CLUSTER, "--dir", str(directory), "down", "--purge", check=False, timeout=300)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_rolling_upgrade_under_8_clients_fails_no_request(cluster_dir):
    # The new release's settings (here LOG_LEVEL) reach every instance, one at a time.
    env = {**ENV, "LOG_LEVEL": "warning"}
    result = run(FAILOVER, "--dir", str(cluster_dir), "upgrade", "--clients", "8", env=env,
                 timeout=900, check=False)
    print(result.stderr[-3000:])
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"rolling upgrade: {outcome['upgrade_s']} s; {outcome['requests']} requests, "
          f"{outcome['requests_during_upgrade']} while it ran; answers "
          f"{outcome['answers']}")
    assert outcome["upgrade_exit"] == 0, outcome.get("upgrade_log")
    assert outcome["failed"] == 0, outcome["failures"]
    assert outcome["lost"] == 0 and outcome["acknowledged"] > 0
    assert outcome["requests_during_upgrade"] > 100, outcome
    # Every instance was replaced (new gunicorn masters), and each runs with the new setting.
    assert all(outcome["pids_after"]) and not set(outcome["pids_before"]) & set(
        outcome["pids_after"])
    for pid in outcome["pids_after"]:
        assert environ_of(pid).get("LOG_LEVEL") == "warning"
    assert result.returncode == 0, outcome
    # The front ends with every instance in its upstream again (none left marked down).
    conf = (cluster_dir / "nginx" / "nginx.conf").read_text()
    assert " down;" not in conf
    status = json.loads(run(CLUSTER, "--dir", str(cluster_dir), "status", "--json").stdout)
    assert [i["pid"] for i in status["instances"]] == outcome["pids_after"]


def test_a_second_upgrade_in_a_row_also_replaces_every_instance(cluster_dir):
    before = [i["pid"] for i in json.loads(
        run(CLUSTER, "--dir", str(cluster_dir), "status", "--json").stdout)["instances"]]
    result = run(CLUSTER, "--dir", str(cluster_dir), "upgrade", timeout=600)
    assert "upgrade: draining instance 2" in result.stderr
    after = [i["pid"] for i in json.loads(
        run(CLUSTER, "--dir", str(cluster_dir), "status", "--json").stdout)["instances"]]
    assert all(after) and not set(before) & set(after)


def test_upgrade_without_a_cluster_says_so(tmp_path):
    result = subprocess.run([CLUSTER, "--dir", str(tmp_path / "none"), "upgrade"], env=ENV,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "no running cluster here: bin/cluster up first" in result.stderr
    assert "Traceback" not in result.stderr
