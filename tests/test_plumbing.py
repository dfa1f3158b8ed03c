"""The tools' shared plumbing (widgetsvc/ops/plumbing.py): the one place that reads /proc,
picks the unprivileged users, shortens socket paths, finds ports and waits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from widgetsvc.ops import plumbing
from widgetsvc.setting_errors import SettingError


def test_a_socket_directory_that_fits_is_kept_and_a_long_one_is_shortened():
    short = Path("/srv/w/run")
    assert plumbing.socket_dir(short, ".s.PGSQL.65535") == short
    long = Path("/srv") / ("d" * 90) / "run"
    chosen = plumbing.socket_dir(long, ".s.PGSQL.65535")
    assert chosen.parent == Path(tempfile.gettempdir())
    assert plumbing.socket_fits(chosen, ".s.PGSQL.65535")
    # The same directory each time (clients compute it too), another one for another path.
    assert plumbing.socket_dir(long, ".s.PGSQL.65535") == chosen
    assert plumbing.socket_dir(long.parent / "run2", ".s.PGSQL.65535") != chosen


def test_socket_fits_counts_the_separator_and_the_name():
    directory = Path("/" + "a" * 89)  # 90 characters
    assert plumbing.socket_fits(directory, "x" * 9)  # 90 + 1 + 9 = 100
    assert not plumbing.socket_fits(directory, "x" * 10)


@pytest.mark.e2e  # starts processes (tests/tiers.py)
def test_proc_readers_see_a_child_and_forget_it_once_reaped():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        fields = plumbing.stat_fields(child.pid)
        assert fields is not None and int(fields[1]) == os.getpid()
        assert plumbing.running(child.pid)
        assert child.pid in plumbing.children(os.getpid())
        record = [child.pid, plumbing.start_time(child.pid)]
        assert plumbing.alive(record)
        assert not plumbing.alive([child.pid, "0"])  # a reused pid: another start time
    finally:
        child.kill()
        child.wait()
    assert not plumbing.running(child.pid)
    assert child.pid not in plumbing.children(os.getpid())


@pytest.mark.e2e  # starts processes (tests/tiers.py)
def test_a_zombie_counts_as_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        assert plumbing.poll(lambda: not plumbing.running(child.pid), timeout=30, interval=0.02)
        assert child.pid in {int(entry.name) for entry in Path("/proc").iterdir()
                             if entry.name.isdigit()}  # not reaped yet: a zombie
    finally:
        child.wait()


def test_free_port_can_be_bound_and_free_ports_are_distinct():
    port = plumbing.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        assert not plumbing.port_free(port)
        assert not plumbing.tcp_open(port)  # bound, not listening
        sock.listen()
        assert plumbing.tcp_open(port)
    ports = plumbing.free_ports(5)
    assert len(set(ports)) == 5


def test_a_stopped_servers_port_is_free_while_its_connections_linger():
    """The server closed first: its side of the connection lingers in TIME_WAIT, which a
    plain bind counts as taken, and a server's (SO_REUSEADDR) does not."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()
            assert client.recv(1) == b""
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert plumbing.port_free(port)


def test_listeners_name_the_process_that_listens_on_a_port_and_no_other():
    with socket.socket() as server, socket.socket() as bound_only:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert plumbing.listeners(port) == {os.getpid(): Path("/proc/self/comm").read_text()
                                            .strip()}
        bound_only.bind(("127.0.0.1", 0))  # bound, not listening: nobody answers there
        assert plumbing.listeners(bound_only.getsockname()[1]) == {}
    assert plumbing.listeners(port) == {}


def test_a_cluster_part_whose_port_another_process_holds_names_it(tmp_path):
    """``Part.wait`` refuses a part that answers from someone else's process (two tools
    drawing loopback ports from one pool)."""
    from widgetsvc.ops.cluster.part import Part

    class Listening(Part):
        name = "listening"

        def __init__(self, port: int, owners: set[int]):
            self.port, self.mine = port, owners

        def ports(self) -> list[int]:
            return [self.port]

        def owners(self) -> set[int]:
            return self.mine

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert Listening(port, {os.getpid()}).strangers() == []
        assert Listening(port, {os.getpid() + 1_000_000}).strangers() == [
            f"port {port}: pid {os.getpid()} ({plumbing.listeners(port)[os.getpid()]})"]
        assert Listening(plumbing.free_port(), set()).strangers() == []  # nobody there yet


def test_unix_open_only_when_something_listens(tmp_path):
    path = tmp_path / "s.sock"
    assert not plumbing.unix_open(path)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert not plumbing.unix_open(path)
        server.listen()
        assert plumbing.unix_open(path)


def test_poll_returns_at_once_on_success_and_stops_when_told_to_give_up():
    calls = []
    assert plumbing.poll(lambda: calls.append(1) or len(calls) >= 3, timeout=30, interval=0)
    assert len(calls) == 3
    # An exception means "not yet"; give_up ends the wait well before the timeout.
    tries = []

    def failing() -> bool:
        tries.append(1)
        raise ConnectionRefusedError

    assert not plumbing.poll(failing, timeout=600, interval=0, give_up=lambda: len(tries) >= 4)
    assert len(tries) == 4


@pytest.mark.e2e  # starts processes (tests/tiers.py)
def test_wait_until_says_what_was_not_ready_and_when_the_process_died(tmp_path):
    log = tmp_path / "part.log"
    log.write_text("one\nthe last line\n")
    with pytest.raises(RuntimeError, match=r"(?s)etcd: not ready after 0 s.*the last line"):
        plumbing.wait_until(lambda: False, timeout=0, what="etcd", log=log, interval=0)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    record = [child.pid, plumbing.start_time(child.pid) or "gone"]
    child.wait()
    with pytest.raises(RuntimeError, match="patroni: the process exited"):
        plumbing.wait_until(lambda: False, timeout=600, what="patroni", record=record,
                            interval=0)


def test_os_user_refuses_a_missing_user_and_root_in_one_line():
    with pytest.raises(SettingError, match=r"^WIDGETSVC_PG_OS_USER=no-such-user-x: no such OS "
                                           r"user on this machine \(.*\)$"):
        plumbing.os_user("WIDGETSVC_PG_OS_USER", "no-such-user-x")
    with pytest.raises(SettingError, match=r"^WIDGETSVC_NGINX_USER=root: is root"):
        plumbing.os_user("WIDGETSVC_NGINX_USER", "root")
    assert plumbing.os_user("WIDGETSVC_NGINX_USER", "nobody").pw_name == "nobody"


@pytest.mark.skipif(os.geteuid() != 0, reason="root picks an unprivileged user")
def test_root_runs_parts_as_the_named_user_else_the_first_that_exists():
    pick = plumbing.unprivileged_user
    assert pick("WIDGETSVC_NGINX_USER", "nobody", ["root"]).pw_name == "nobody"
    assert pick("WIDGETSVC_NGINX_USER", "", ["no-such-user-x", "nobody"]).pw_name == "nobody"
    with pytest.raises(plumbing.NoUser, match=r"no unprivileged user \(no-such-user-x\)"):
        pick("WIDGETSVC_NGINX_USER", "", ["no-such-user-x"])


@pytest.mark.skipif(os.geteuid() == 0, reason="as root a part runs as another user (above)")
def test_without_root_no_other_user_is_picked():
    assert plumbing.unprivileged_user("WIDGETSVC_NGINX_USER", "nobody", ["nobody"]) is None
