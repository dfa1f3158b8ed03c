"""The private PostgreSQL clusters of widgetsvc.localdb: side by side, idempotent, removable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.localdb import VAR_DIR, LocalCluster

CATALOG = load_queries(SQL_DIR / "testing")


def catalog(url: str, query: str, /, **params) -> list[dict]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(CATALOG[query], params).fetchall()


@pytest.fixture
def two_clusters():
    pid = os.getpid()
    clusters = [LocalCluster(VAR_DIR / f"t-a-{pid}"), LocalCluster(VAR_DIR / f"t-b-{pid}")]
    try:
        yield clusters
    finally:
        for cluster in clusters:
            cluster.destroy()


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
    deep = VAR_DIR / ("d" * 120) / "pg"
    cluster = LocalCluster(deep)  # constructing creates nothing
    assert cluster.socket_dir.parent == Path(tempfile.gettempdir())
    assert cluster.socket_dir.name.startswith("widgetsvc-")
    assert len(str(cluster.socket_dir / ".s.PGSQL.65535")) <= 100
    assert LocalCluster(deep).socket_dir == cluster.socket_dir  # stable for one root
    assert LocalCluster(VAR_DIR / ("e" * 120) / "pg").socket_dir != cluster.socket_dir
    assert not deep.exists()
