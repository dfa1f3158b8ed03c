"""What the bin/cluster tests share (tests/test_cluster*.py): the commands, their environment,
and the processes a cluster leaves. The cluster itself is one for the whole run, the
``cluster_dir`` fixture of tests/conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from widgetsvc.ops.localdb import REPO_ROOT

SECRET = "cluster-test-secret-that-is-long-enough-0123456789"
CLUSTER = str(REPO_ROOT / "bin" / "cluster")
FAILOVER = str(REPO_ROOT / "bin" / "failover")
ENV = {
    **os.environ,
    "SECRET_KEY": SECRET,
    "WIDGETSVC_ENV": "test",
    "BCRYPT_ROUNDS": "4",
    "AUTH_RATE_LIMIT": "0",
    "WEB_CONCURRENCY": "2",
}


def run(*args: str, env: dict | None = None, timeout: float = 300,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command as a user runs it; with ``check``, its failure shows its output."""
    result = subprocess.run(list(args), env=env or ENV, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"{args}: {result.returncode}\n{result.stdout}\n" \
                                       f"{result.stderr[-4000:]}"
    return result


def status(cluster_dir: Path) -> dict:
    return json.loads(run(CLUSTER, "--dir", str(cluster_dir), "status", "--json").stdout)


def processes_of(cluster_dir: Path, groups: list[int]) -> list[str]:
    """Live processes that belong to the cluster: in one of its process groups, or naming its
    directory on their command line (PostgreSQL, which Patroni starts in its own session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        if int(fields[2]) in groups or str(cluster_dir) in cmdline:
            found.append(f"{entry.name} {cmdline}")
    return found


def gone(cluster_dir: Path, groups: list[int], timeout: float = 60) -> list[str]:
    """Waits until the cluster's processes are gone (a stopped process may take a moment to
    be reaped on a busy machine); returns what is left after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (left := processes_of(cluster_dir, groups)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
