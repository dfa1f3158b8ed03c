"""The tools' shared process and filesystem plumbing: detached processes, pids and /proc, the
unprivileged users parts run as, Unix socket paths, free ports, waiting.

Every tool that starts something (the private PostgreSQL, the front, the cluster, backups)
starts, finds, waits for and stops it through here. Each process starts in its own session
(so it outlives the terminal that ran it, and its process group holds its children). A pid is
recorded with the process's start time, so a pid the kernel reused is never signalled.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from widgetsvc import setting_errors
from widgetsvc.ops import safefs

# sun_path holds 107 bytes; keeping paths to 100 leaves room for a terminating NUL and slack.
SOCKET_PATH_LIMIT = 100


# -- processes (/proc) ------------------------------------------------------------------------

def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, ...), or None when
    the process is gone or a zombie (as good as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields


def processes() -> Iterator[tuple[int, list[str]]]:
    """Every live process: its pid and its ``stat_fields``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None:
                yield int(entry.name), fields


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = stat_fields(pid)
    return None if fields is None else fields[19]


def running(pid: int) -> bool:
    """Whether a (non-zombie) process ``pid`` exists, whoever it belongs to."""
    return stat_fields(pid) is not None


def alive(record: Sequence | None) -> bool:
    """``record`` is ``[pid, start_time]`` as stored in the state file."""
    return bool(record) and start_time(int(record[0])) == record[1]


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (a session leader's children stay in it)."""
    return [pid for pid, fields in processes() if int(fields[2]) == pgid]


def children(ppid: int) -> list[int]:
    """Live processes whose parent is ``ppid`` (a subreaper's adopted orphans among them)."""
    return [pid for pid, fields in processes() if int(fields[1]) == ppid]


# -- users ------------------------------------------------------------------------------------

class NoUser(RuntimeError):
    """Running as root, but none of the unprivileged users to run a part as exists."""


def os_user(variable: str, name: str) -> pwd.struct_passwd:
    """The OS user a setting names; it must exist and must not be root (the point of naming
    one is to run a part unprivileged)."""
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise setting_errors.bad_setting(variable, name, "no such OS user on this machine",
                                         "an existing unprivileged user, e.g. nobody") from None
    if user.pw_uid == 0:
        raise setting_errors.bad_setting(variable, name, "is root",
                                         "an existing unprivileged user, e.g. nobody")
    return user


def unprivileged_user(variable: str, wanted: str, candidates: Sequence[str]
                      ) -> pwd.struct_passwd | None:
    """Who a part runs as when this process is root: the user the setting ``variable`` names
    (``wanted``), else the first of ``candidates`` that exists. None when not root: the part
    runs as whoever runs the tool."""
    if os.geteuid() != 0:
        return None
    if wanted:
        return os_user(variable, wanted)
    for name in candidates:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise NoUser(f"running as root, but no unprivileged user ({', '.join(candidates)}) exists")


# -- Unix sockets -----------------------------------------------------------------------------

def socket_fits(directory: Path, name: str) -> bool:
    """Whether socket ``name`` in ``directory`` stays within a socket path's length."""
    return len(str(directory)) + 1 + len(name) <= SOCKET_PATH_LIMIT


def socket_dir(preferred: Path, longest_name: str) -> Path:
    """``preferred``, or when ``longest_name`` in it would be too long for a socket path, a
    short directory in the temp directory named after it (the same one every time, so that
    clients find it; its creator refuses one another user made first: ``safefs.make_dir``)."""
    if socket_fits(preferred, longest_name):
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"widgetsvc-{digest}"


# -- starting and stopping --------------------------------------------------------------------


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


# -- ports and waiting ------------------------------------------------------------------------

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


def free_port(host: str = "127.0.0.1") -> int:
    """One port free right now."""
    return free_ports(1, host)[0]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on HOST:PORT now. Bound as servers bind (SO_REUSEADDR):
    a stopped server's last connections linger in TIME_WAIT for a minute, and they would
    otherwise make its own port look taken (so the cluster moved a restarted part to a new
    port, and Prometheus kept the old target's last samples for five minutes)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def poll(check: Callable[[], object], *, timeout: float, interval: float = 0.2,
         give_up: Callable[[], object] | None = None) -> bool:
    """Call ``check`` every ``interval`` s until it is true (True), ``give_up`` is true or
    ``timeout`` s passed (False). An exception from ``check`` means "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except Exception:  # noqa: S110 (not up yet: any error means "try again")
            pass
        if (give_up is not None and give_up()) or time.monotonic() > deadline:
            return False
        time.sleep(interval)


def wait_until(check: Callable[[], object], *, timeout: float, what: str,
               log: Path | None = None, record: Sequence | None = None,
               interval: float = 0.2) -> None:
    """Poll ``check`` until true; fail with the log's tail after ``timeout`` or if the
    process of ``record`` died meanwhile."""
    died = (lambda: not alive(record)) if record is not None else None
    if poll(check, timeout=timeout, interval=interval, give_up=died):
        return
    log_tail = f"\n{tail(log)}" if log else ""
    if died is not None and died():
        raise RuntimeError(f"{what}: the process exited{log_tail}")
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s{log_tail}")


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on HOST:PORT."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def listeners(port: int) -> dict[int, str]:
    """The processes holding a listening TCP socket on ``port`` (any IPv4 or IPv6 address),
    with their command names: whose server really answers there. Another user's process is
    seen only by root (its /proc/PID/fd is not readable otherwise)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local address "HEXIP:HEXPORT", state 0A = LISTEN, inode the 10th field
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    found: dict[int, str] = {}
    for pid, _ in processes() if inodes else ():
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
                   for fd in os.listdir(f"/proc/{pid}/fd")):
                found[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue  # gone meanwhile, or not ours to look at
    return found


def unix_open(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def tail(path: Path | None, lines: int = 25) -> str:
    if path is None:
        return ""
    text = safefs.read_text(path)  # the part's user's directory: never through its link
    if text is None:
        return ""
    return f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:])
