"""Issue 18, item 6: root never writes, chmods or chowns through a link an unprivileged user
planted in a directory it can write (the cluster's directory, nginx's runtime directory,
/tmp), and a predictable directory in /tmp made first by someone else is refused."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from widgetsvc.ops import front, localdb, plumbing, safefs
from widgetsvc.ops.cluster import state as cluster_state
from widgetsvc.ops.cluster.hacluster import HACluster
from widgetsvc.ops.cluster.render import write
from widgetsvc.ops.localdb import LocalDBError, PrivatePostgres

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root's behaviour towards other users")

NOBODY = pwd.getpwnam("nobody")
SECRET = "root's own file\n"


@pytest.fixture
def victim(tmp_path) -> Path:
    """A root-owned private file and directory an attacker would like root to hand over."""
    target = tmp_path / "victim"
    target.mkdir(mode=0o700)
    (target / "file").write_text(SECRET)
    os.chmod(target / "file", 0o600)
    return target


def untouched(victim: Path) -> None:
    for path, mode in ((victim, 0o700), (victim / "file", 0o600)):
        info = path.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, mode), path
    assert (victim / "file").read_text() == SECRET


@pytest.fixture
def users_dir(tmp_path) -> Path:
    """A directory the unprivileged user owns, like the cluster's (0700, theirs)."""
    directory = tmp_path / "cluster"
    directory.mkdir(mode=0o700)
    os.chown(directory, NOBODY.pw_uid, NOBODY.pw_gid)
    return directory


def plant(link: Path, target: Path) -> None:
    """What the unprivileged user can do in its own directory: a link to anywhere."""
    link.symlink_to(target)
    os.lchown(link, NOBODY.pw_uid, NOBODY.pw_gid)


@pytest.mark.e2e
def test_a_log_link_is_not_followed_or_chowned(users_dir, victim):
    plant(users_dir / "etcd.log", victim / "file")
    with pytest.raises(safefs.UnsafePath):
        plumbing.start(["true"], log=users_dir / "etcd.log", env={}, cwd=users_dir, user=NOBODY)
    untouched(victim)
    # A plain log is created, given to the part's user, and appended to.
    # (It keeps running until stopped: a part that exits at once is start()'s error.)
    record = plumbing.start(["/bin/sh", "-c", "echo hello; exec sleep 60"],
                            log=users_dir / "patroni.log", env={}, cwd=users_dir, user=NOBODY)
    plumbing.wait_until(lambda: "hello" in plumbing.tail(users_dir / "patroni.log"),
                        timeout=30, what="the echo")
    plumbing.stop(record)
    log = users_dir / "patroni.log"
    assert log.stat().st_uid == NOBODY.pw_uid and not log.is_symlink()


def test_a_hard_link_is_not_appended_to(users_dir, victim):
    os.link(victim / "file", users_dir / "haproxy.log")  # (protected_hardlinks stops a user)
    with pytest.raises(safefs.UnsafePath):
        safefs.open_append(users_dir / "haproxy.log", NOBODY)
    untouched(victim)


def test_a_config_link_is_replaced_not_written_through(users_dir, victim):
    plant(users_dir / "patroni.yml", victim / "file")
    assert write(users_dir / "patroni.yml", "scope: x\n", owner=NOBODY)
    untouched(victim)
    written = users_dir / "patroni.yml"
    assert not written.is_symlink() and written.read_text() == "scope: x\n"
    assert (written.stat().st_uid, stat.S_IMODE(written.stat().st_mode)) == (NOBODY.pw_uid, 0o600)
    assert not write(written, "scope: x\n", owner=NOBODY)  # unchanged: not rewritten


def cluster_in(directory: Path, monkeypatch) -> HACluster:
    """An HACluster kept right there (not relocated where its owner can reach it)."""
    monkeypatch.setattr(cluster_state, "reachable_dir", lambda wanted: wanted)
    cluster = HACluster(directory)
    cluster.owner = NOBODY
    return cluster


def test_the_clusters_state_and_directories_ignore_planted_links(users_dir, victim,
                                                                 monkeypatch):
    cluster = cluster_in(users_dir, monkeypatch)
    plant(users_dir / "state.json", victim / "file")
    plant(users_dir / "pg1", victim)
    plant(users_dir / "nginx", victim)
    cluster.state = {"version": 1}
    cluster.save()
    assert HACluster(users_dir).state == {"version": 1}
    assert not (users_dir / "state.json").is_symlink()
    with pytest.raises(safefs.UnsafePath):
        cluster.private_dir(users_dir / "pg1")
    with pytest.raises(safefs.UnsafePath):  # a link on the way is not followed either
        cluster.config(users_dir / "nginx" / "nginx.conf", "x")
    untouched(victim)
    assert not (victim / "nginx.conf").exists()


def test_a_link_in_a_root_owned_directory_is_still_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)  # root's own link (like /var/run -> /run)
    safefs.write_file(tmp_path / "alias" / "conf", "x")
    assert (real / "conf").read_text() == "x"
    assert safefs.make_dir(tmp_path / "alias" / "sub", NOBODY) == tmp_path / "alias" / "sub"
    assert (real / "sub").stat().st_uid == NOBODY.pw_uid


# -- predictable directories in /tmp ------------------------------------------------------------

def deep_cluster() -> PrivatePostgres:
    deep = Path(tempfile.gettempdir()) / f"widgetsvc-deep-{os.getpid()}" / ("d" * 120) / "pg"
    cluster = PrivatePostgres(deep)
    assert cluster.socket_dir.parent == Path(tempfile.gettempdir())
    return cluster


@pytest.mark.parametrize("made_by", ["another user, 0777", "a link to root's directory"])
def test_a_socket_directory_made_first_by_someone_else_is_refused(made_by, victim):
    cluster = deep_cluster()
    assert cluster.owner.pw_uid != NOBODY.pw_uid
    socket_dir = cluster.socket_dir
    if made_by.startswith("another"):
        socket_dir.mkdir()
        os.chmod(socket_dir, 0o777)  # noqa: S103 (the attacker's directory)
        os.chown(socket_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    else:
        plant(socket_dir, victim)
    try:
        with pytest.raises(LocalDBError, match=str(socket_dir)):
            localdb.make_dir(socket_dir, cluster.owner)
        if made_by.startswith("another"):
            info = socket_dir.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (NOBODY.pw_uid, 0o777)
        untouched(victim)
    finally:
        if socket_dir.is_symlink():
            socket_dir.unlink()
        else:
            socket_dir.rmdir()


def test_an_own_socket_directory_left_open_to_others_is_refused(victim):
    cluster = deep_cluster()
    socket_dir = cluster.socket_dir
    socket_dir.mkdir()
    os.chmod(socket_dir, 0o777)  # noqa: S103
    os.chown(socket_dir, cluster.owner.pw_uid, cluster.owner.pw_gid)
    try:
        with pytest.raises(LocalDBError, match="writable by others"):
            localdb.make_dir(socket_dir, cluster.owner)
        os.chmod(socket_dir, 0o700)  # the owner's, private: taken as it is
        assert localdb.make_dir(socket_dir, cluster.owner) == socket_dir
    finally:
        socket_dir.rmdir()


def test_the_clusters_socket_directory_in_tmp_is_checked_too(users_dir, monkeypatch):
    cluster = cluster_in(users_dir / ("d" * 120), monkeypatch)
    socket_dir = cluster.socket_dir("pg1")
    assert socket_dir.parent == Path(tempfile.gettempdir())
    socket_dir.mkdir()
    os.chmod(socket_dir, 0o777)  # noqa: S103
    os.chown(socket_dir, 12345, 12345)  # someone else got there first
    try:
        with pytest.raises(safefs.UnsafePath):
            cluster.private_dir(socket_dir)
        assert socket_dir.stat().st_uid == 12345
    finally:
        socket_dir.rmdir()


def test_a_long_runtime_directory_gets_an_unpredictable_name():
    base = Path(tempfile.mkdtemp())
    os.chmod(base, 0o755)  # noqa: S103 (nginx's user reaches var/ there: no relocation)
    var = base / ("v" * 100) / "var"
    var.mkdir(parents=True)
    old_guess = Path(tempfile.gettempdir()) / (
        "widgetsvc-" + hashlib.sha256(str(var).encode()).hexdigest()[:12])
    first = front.make_runtime_dir(var, NOBODY, os.getpid())
    second = front.make_runtime_dir(var, NOBODY, os.getpid())
    try:
        assert first != second and first.parent == Path(tempfile.gettempdir())
        assert old_guess not in (first.parent, second.parent)
        info = first.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (NOBODY.pw_uid, 0o700)
        assert len(str(first / "auth-gate.sock")) <= 100
    finally:
        for made in (first, second):
            made.rmdir()
        shutil.rmtree(base)


def test_a_log_tail_in_an_error_is_not_read_through_a_link(users_dir, victim):
    """Root quotes a part's log in its error messages: not another file's lines."""
    plant(users_dir / "etcd.log", victim / "file")
    assert SECRET.strip() not in plumbing.tail(users_dir / "etcd.log")
    (users_dir / "pgbouncer.log").write_text("a line\n")
    assert plumbing.tail(users_dir / "pgbouncer.log") == "--- pgbouncer.log ---\na line"
