"""``bin/serve`` supervises nginx and gunicorn as one unit (issue 10): both in its process
group, SIGTERM stops both and leaves nothing running, and if either dies the other is stopped
and bin/serve exits non-zero. The same with Granian in gunicorn's place (issue 25: every test
here runs under both, see tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import API, PASSWORD, LiveServer, processes
from tests.live_http import call
from widgetsvc.ops import localdb
from widgetsvc.ops.localdb import VAR_DIR

pytestmark = pytest.mark.e2e


def group_members(pgid: int) -> dict[int, str]:
    return processes(group=pgid)


def wait_gone(pgid: int, timeout: float = 40) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def server(database_url, db, tmp_path, wsgi_server):
    live = LiveServer(database_url, tmp_path / "serve.log").start().wait_healthy()
    yield live
    live.stop()


def kind(server: LiveServer) -> str:
    """The WSGI server this bin/serve runs: gunicorn, or granian (tests/conftest.py)."""
    return server.env.get("WIDGETSVC_SERVER") or "gunicorn"


def members(server: LiveServer) -> dict[int, str]:
    found = group_members(server.proc.pid)
    assert any("nginx: master" in cmd for cmd in found.values()), found
    assert any(f"bin/{kind(server)} " in cmd for cmd in found.values()), found
    return found


def runtime_dirs(pid: int) -> list[Path]:
    """This bin/serve's runtime directories, wherever they are under var/ (or relocated).
    ``os.walk`` skips a directory that vanishes while it is read: in a parallel run the other
    worker's servers create and remove theirs meanwhile."""
    names = {f"serve-{pid}", f"app-{pid}"}
    return [Path(root, name) for base in (VAR_DIR, Path("/var/lib/widgetsvc"))
            for root, dirs, _files in os.walk(base) for name in dirs if name in names]


def uid_of(pid: int) -> int:
    """The real uid of a process (the first field of ``Uid:`` in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="only root has privileges to drop")
def test_as_root_the_application_runs_unprivileged(server):
    """gunicorn's master binds the socket as root; its workers, which run the application,
    are the clusters' unprivileged owner: yet they reach the database, hash passwords in their
    slots, and write the request log."""
    deadline = time.monotonic() + 120  # generous: a loaded machine boots workers slowly
    owner = localdb.cluster_owner()
    while True:  # health answered once one worker was up; the other may still be booting
        found = members(server)
        gunicorns = [p for p, cmd in found.items()
                     if f"bin/{kind(server)} " in cmd and "widgetsvc.ops.cli" not in cmd]
        master = min(gunicorns)
        workers = [p for p in gunicorns if parent_of(p) == master]
        # A Granian worker loads the code as root first and only then drops to the owner.
        if len(workers) == 2 and {uid_of(p) for p in workers} == {owner.pw_uid}:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(workers) == 2, found  # WEB_CONCURRENCY=2
    assert uid_of(master) == 0  # it binds the socket, then stays root to manage the workers
    assert {uid_of(p) for p in workers} == {owner.pw_uid}
    for pid in workers:
        groups = Path(f"/proc/{pid}/status").read_text().split("Groups:")[1].split("\n")[0]
        assert groups.split() in ([], [str(owner.pw_gid)]), groups  # none of root's

    # The socket root's gunicorn binds (and chowns to the workers' user) is in root's own
    # directory, which nginx's group may only enter: no one else can swap a link in there.
    (runtime,) = [p for p in runtime_dirs(server.proc.pid) if p.name.startswith("serve-")]
    info = runtime.stat()
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (0, "0o710")
    if kind(server) == "gunicorn":
        assert (runtime / "gunicorn.sock").stat().st_uid == owner.pw_uid
    else:  # Granian's main process binds it (root's), open to nginx, who alone enters here
        assert oct((runtime / "granian.sock").stat().st_mode & 0o777) == "0o666"

    email = f"unprivileged-{os.getpid()}@example.com"
    registered = call(server, "POST", f"{API}/auth/register",
                      data={"email": email, "password": PASSWORD})
    assert registered.status == 201, registered.body  # a hashing slot, then the database
    deadline = time.monotonic() + 60
    while '"path":"/api/v1/auth/register"' not in server.log():
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.1)


def test_sigterm_stops_nginx_and_gunicorn_and_leaves_nothing(server):
    members(server)
    assert runtime_dirs(server.proc.pid)
    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(40) == 0, server.log()[-2000:]
    assert wait_gone(server.proc.pid) == {}
    assert runtime_dirs(server.proc.pid) == []


@pytest.mark.parametrize("victim", ["nginx: master", "wsgi server"])
def test_if_one_dies_the_other_is_stopped_and_serve_exits_non_zero(server, victim):
    found = members(server)
    if victim == "wsgi server":
        victim = f"bin/{kind(server)} "
    # the oldest matching process is the master (the workers are its children)
    pid = min(p for p, cmd in found.items() if victim in cmd and "widgetsvc.ops.cli" not in cmd)
    os.kill(pid, signal.SIGKILL)
    assert server.proc.wait(40) != 0
    assert wait_gone(server.proc.pid) == {}
    assert "exited" in server.log()
