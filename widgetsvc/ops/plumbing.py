"""The tools' shared process and port plumbing: detached processes, pids, free ports, waiting.

Every tool that starts something (the private PostgreSQL, the front, the cluster, backups)
starts, finds, waits for and stops it through here. Each process starts in its own session
(so it outlives the terminal that ran it, and its process group holds its children). A pid is
recorded with the process's start time, so a pid the kernel reused is never signalled.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from widgetsvc.ops import safefs


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is as good as gone
        return None
    return fields[19]


def alive(record: Sequence | None) -> bool:
    """``record`` is ``[pid, start_time]`` as stored in the state file."""
    return bool(record) and start_time(int(record[0])) == record[1]


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (a session leader's children stay in it)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def start(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str],
    cwd: Path,
    user: pwd.struct_passwd | None = None,
) -> list:
    """Start ``argv`` detached; return its record ``[pid, start_time]``."""
    kwargs: dict = {}
    if user is not None and os.geteuid() == 0 and user.pw_uid != 0:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    # The log is in a directory the part's user owns: opened without following a link it
    # planted, and given to that user (safefs).
    with os.fdopen(safefs.open_append(log, owner=user), "ab") as out:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(env), cwd=str(cwd), start_new_session=True, close_fds=True, **kwargs,
        )
    for _ in range(50):
        ident = start_time(proc.pid)
        if ident is not None:
            return [proc.pid, ident]
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError(f"{argv[0]} exited at once (log: {log}):\n{tail(log)}")


def stop(record: Sequence | None, *, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Signal the process's whole group, wait, then SIGKILL whatever is left of it.

    The group is signalled even when its leader is gone: gunicorn workers whose master was
    killed, for instance, are still in it."""
    if not record:
        return
    pid = int(record[0])
    leader_alive = alive(record)
    members = group_members(pid)
    if not members:
        return
    if not leader_alive and start_time(pid) is not None:
        members = [m for m in members if m != pid]  # pid reused by another group leader?
    for member in members:
        _signal(member, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and group_members(pid):
        time.sleep(0.1)
    for member in group_members(pid):
        _signal(member, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and group_members(pid):
        time.sleep(0.05)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free right now (all bound at once, so never the same twice)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               log: Path | None = None, record: Sequence | None = None) -> None:
    """Poll ``check`` until true; fail with the log's tail after ``timeout`` or if the
    process of ``record`` died meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: S110 (not up yet: any error means "try again")
            pass
        if record is not None and not alive(record):
            raise RuntimeError(f"{what}: the process exited" + (f"\n{tail(log)}" if log else ""))
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s"
                               + (f"\n{tail(log)}" if log else ""))
        time.sleep(0.2)


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def tail(path: Path | None, lines: int = 25) -> str:
    if path is None:
        return ""
    text = safefs.read_text(path)  # the part's user's directory: never through its link
    if text is None:
        return ""
    return f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:])
