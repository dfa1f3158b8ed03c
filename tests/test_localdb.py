"""The private PostgreSQL clusters of widgetsvc.ops.localdb: side by side, idempotent, removable."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.ops import localdb
from widgetsvc.ops.localdb import VAR_DIR, PrivatePostgres
from widgetsvc.setting_errors import SettingError

CATALOG = load_queries(SQL_DIR / "testing")


def catalog(url: str, query: str, /, **params) -> list[dict]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(CATALOG[query], params).fetchall()


@pytest.fixture
def two_clusters():
    pid = os.getpid()
    clusters = [PrivatePostgres(VAR_DIR / f"t-a-{pid}"), PrivatePostgres(VAR_DIR / f"t-b-{pid}")]
    try:
        yield clusters
    finally:
        for cluster in clusters:
            cluster.destroy()


@pytest.mark.e2e
def test_two_clusters_run_side_by_side_and_are_destroyed(two_clusters):
    a, b = two_clusters
    assert a.port == b.port  # the same port number: only the socket directories differ
    assert a.socket_dir == a.root / "run" and b.socket_dir == b.root / "run"

    a.start()
    b.start()
    assert a.is_running() and b.is_running()
    assert (a.socket_dir / f".s.PGSQL.{a.port}").exists()
    assert (b.socket_dir / f".s.PGSQL.{b.port}").exists()

    # Each URL reaches its own server: its own data directory, its own databases.
    a_identity = catalog(a.url("postgres"), "catalog_server_identity")[0]
    b_identity = catalog(b.url("postgres"), "catalog_server_identity")[0]
    assert Path(a_identity["data_directory"]) == a.data_dir
    assert Path(b_identity["data_directory"]) == b.data_dir
    a.create_database("only_in_a")
    assert catalog(a.url("postgres"), "catalog_database_exists", name="only_in_a")[0]["present"]
    assert not catalog(b.url("postgres"), "catalog_database_exists",
                       name="only_in_a")[0]["present"]

    # start() again: the same running server, not a new one, and no error.
    assert a.start() is a
    assert a.is_running()
    assert catalog(a.url("postgres"), "catalog_server_identity")[0] == a_identity
    assert catalog(a.url("only_in_a"), "catalog_server_identity")[0] == a_identity

    a.destroy()
    assert not a.is_running()
    assert not a.root.exists()
    assert not a.lock_path.exists()
    assert b.is_running()  # destroying one leaves the other alone
    assert catalog(b.url("postgres"), "catalog_server_identity")[0] == b_identity

    b.destroy()
    assert not b.root.exists()
    assert not b.lock_path.exists()
    b.destroy()  # destroying twice is harmless


def test_a_deep_root_gets_a_short_socket_directory():
    # Under the temp directory (searchable by everyone), so that the root stays where it is
    # wherever this clone lives; the socket directory alone moves.
    deep = Path(tempfile.gettempdir()) / f"widgetsvc-deep-{os.getpid()}" / ("d" * 120) / "pg"
    cluster = PrivatePostgres(deep)  # constructing creates nothing
    assert cluster.root == deep
    assert cluster.socket_dir.parent == Path(tempfile.gettempdir())
    assert cluster.socket_dir.name.startswith("widgetsvc-")
    assert len(str(cluster.socket_dir / ".s.PGSQL.65535")) <= 100
    assert PrivatePostgres(deep).socket_dir == cluster.socket_dir  # stable for one root
    assert PrivatePostgres(deep.parent.parent / ("e" * 120) / "pg").socket_dir != cluster.socket_dir
    assert not deep.parent.parent.exists()


# -- where a cluster goes when its owner cannot reach the checkout ----------------------------

def test_the_relocation_base_survives_a_reboot(monkeypatch, tmp_path):
    if os.geteuid() == 0:
        assert localdb.relocation_base() == Path("/var/lib/widgetsvc")
    monkeypatch.setattr(localdb.os, "geteuid", lambda: 1000)  # as a user
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert localdb.relocation_base() == tmp_path / "state" / "widgetsvc"
    monkeypatch.setenv("XDG_STATE_HOME", "")  # the XDG default instead
    assert localdb.relocation_base() == tmp_path / "home" / ".local" / "state" / "widgetsvc"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # never guessed at: refused
    with pytest.raises(SettingError, match="^XDG_STATE_HOME=relative/state: not an absolute"):
        localdb.relocation_base()
    monkeypatch.delenv("XDG_STATE_HOME")
    assert localdb.relocation_base() == tmp_path / "home" / ".local" / "state" / "widgetsvc"


def test_a_checkout_out_of_reach_gets_a_per_clone_directory(tmp_path):
    me = pwd.getpwuid(os.geteuid())
    stranger = pwd.getpwnam("nobody")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)  # noqa: S103 (the test's own directory, traversable on purpose)
    if os.geteuid() == 0:  # pytest's own base directory is private too
        assert not localdb.searchable(tmp_path.parent, stranger)

    # Reachable: the very directory asked for.
    assert localdb.reachable_dir(private / "var" / "pg", me) == private / "var" / "pg"
    # Out of reach: the same name in this clone's own directory under the relocation base.
    moved = localdb.reachable_dir(private / "var" / "pg", stranger)
    assert moved.parent.parent == localdb.relocation_base()
    assert moved.name == "pg"
    assert localdb.reachable_dir(private / "var" / "test-1", stranger).parent == moved.parent
    other_clone = localdb.reachable_dir(private / "other" / "var" / "pg", stranger)
    assert other_clone.parent != moved.parent
    assert localdb.reachable_dir(private / "var" / "pg", stranger) == moved  # stable
    assert not (private / "var").exists()  # computing creates nothing


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="as a user, the cluster's owner is the user")
def test_as_root_a_private_clone_keeps_its_cluster_under_var_lib(tmp_path):
    """A clone in a private directory (mktemp -d, /root): the cluster's owner cannot get in, so
    the cluster lives in /var/lib/widgetsvc/<digest>/, which survives a reboot, and works."""
    private = Path(tempfile.mkdtemp())  # 0700, like `mktemp -d`
    try:
        cluster = PrivatePostgres(private / "var" / f"t-private-{os.getpid()}")
        assert cluster.root.parent.parent == Path("/var/lib/widgetsvc")
        try:
            cluster.start()
            assert cluster.is_running()
            assert Path(catalog(cluster.url("postgres"), "catalog_server_identity")[0][
                "data_directory"]) == cluster.data_dir
            assert (cluster.root.stat().st_uid, oct(cluster.root.parent.stat().st_mode & 0o777)) \
                == (cluster.owner.pw_uid, "0o755")
        finally:
            cluster.destroy()
        assert not cluster.root.exists() and not cluster.root.parent.exists()
    finally:
        os.rmdir(private)
