"""``bin/serve`` reloads on SIGHUP (issue 19, upgrades): gunicorn replaces its workers
gracefully while requests go on, none of them fails, and bin/serve keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import API, PASSWORD, LiveServer
from tests.live_http import call
from widgetsvc.ops.localdb import REPO_ROOT

pytestmark = pytest.mark.e2e


def children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z" and int(fields[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(
                    b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
    return found


def gunicorn_master(server: LiveServer) -> int:
    (master,) = [p for p, cmd in children(server.proc.pid).items() if "gunicorn" in cmd]
    return master


def wait_workers(master: int, count: int, *, not_in: set[int] = frozenset(),
                 timeout: float = 60) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        workers = set(children(master))
        if len(workers) == count and not workers & not_in:
            return workers
        assert time.monotonic() < deadline, (workers, not_in)
        time.sleep(0.1)


@pytest.fixture
def server(database_url, db, tmp_path):
    live = LiveServer(database_url, tmp_path / "serve.log").start()
    deadline = time.monotonic() + 30
    while call(live, "GET", f"{API}/health").status != 200:
        assert time.monotonic() < deadline, live.log()
        time.sleep(0.1)
    yield live
    live.stop()


def test_sighup_replaces_the_workers_and_no_request_fails(server):
    master = gunicorn_master(server)
    nginx = {p for p, cmd in children(server.proc.pid).items() if "nginx" in cmd}
    before = wait_workers(master, 2)  # WEB_CONCURRENCY=2
    stop = threading.Event()
    answers: Counter = Counter()
    lock = threading.Lock()

    def client(n: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            email = f"reload-{os.getpid()}-{n}-{number}@example.com"
            for method, path, data, expected in (
                    ("POST", f"{API}/auth/register", {"email": email, "password": PASSWORD}, 201),
                    ("GET", f"{API}/health", None, 200)):
                status = call(server, method, path, data=data, timeout=60).status
                with lock:
                    answers[(method, status, expected)] += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        os.kill(server.proc.pid, signal.SIGHUP)
        after = wait_workers(master, 2, not_in=before)  # every worker is a new one
        time.sleep(1)  # requests go on against the new workers
        os.kill(server.proc.pid, signal.SIGHUP)  # and a second reload in a row
        wait_workers(master, 2, not_in=before | after)
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(90)
    failed = {k: v for k, v in answers.items() if k[1] != k[2]}
    assert failed == {}, (failed, server.log()[-3000:])
    assert sum(answers.values()) > 20, answers
    # The same bin/serve, gunicorn master and nginx serve on: a reload, not a restart.
    assert server.proc.poll() is None, server.log()[-2000:]
    assert gunicorn_master(server) == master
    assert {p for p, cmd in children(server.proc.pid).items() if "nginx" in cmd} == nginx
    assert "SIGHUP: reloading gunicorn's workers" in server.log()
    assert call(server, "GET", f"{API}/health").status == 200


def test_a_reload_forgets_the_code_the_master_imported():
    """gunicorn runs gunicorn.conf.py again on SIGHUP; the service's modules the master holds
    (as root, the whole preloaded app) must be imported anew, or the new workers would run the
    release the master started with."""
    script = """
import runpy, sys, types
sys.modules["widgetsvc.stale_release"] = types.ModuleType("widgetsvc.stale_release")
import widgetsvc.config as first
runpy.run_path("gunicorn.conf.py")
import widgetsvc.config as second
print("stale" if "widgetsvc.stale_release" in sys.modules else "fresh", first is second)
"""
    env = {**os.environ, "WIDGETSVC_ENV": "test"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["fresh", "False"], result.stdout
