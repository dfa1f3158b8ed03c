"""Backups and point-in-time restore (issue 19, part 2): the drill on the private cluster and on
``bin/cluster``: 500 widgets, ``bin/backup``, 500 more, the moment T, one more widget after T,
then ``DELETE FROM widgets`` in psql and ``bin/restore --time T``: exactly the first 1,000 are
back, the one after T is not, and the service answers. ``pgbackrest verify`` and ``check`` pass
on the repository. The cluster drill boots one cluster (about a minute on 2 cores)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.live_http import call
from widgetsvc.auth.accounts import Accounts
from widgetsvc.db import SQL_DIR, Database, load_queries
from widgetsvc.ops import backup, localdb
from widgetsvc.ops import pgbackrest as pgbr
from widgetsvc.ops.cluster.packages import missing_packages
from widgetsvc.ops.localdb import REPO_ROOT, VAR_DIR, PrivatePostgres
from widgetsvc.ops.migrate import migrate
from widgetsvc.ops.settings import ToolSettings

BIN = REPO_ROOT / "bin"
QUERIES = load_queries(SQL_DIR / "testing")
SEED = load_queries(SQL_DIR / "bench")
SECRET = "backup-test-secret-that-is-long-enough-0123456789"
EMAIL, PASSWORD = "drill@example.com", "Secret-pass-1"
EXPECTED = [f"widget-{i}" for i in range(1, 1001)]


def run(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{args}: {result.returncode}\n{result.stdout}\n" \
                                   f"{result.stderr[-4000:]}"
    return result


def run_failing(*args, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result
    return result


def seed(url: str, first: int, last: int, owner_id: int | None = None) -> int:
    """Widgets ``widget-first`` .. ``widget-last`` (the bench seeder's statement), owned by
    the drill's user (created on the first call); its id."""
    db = Database(url, min_size=1, max_size=1)
    db.pool.open(wait=True, timeout=10)
    try:
        if owner_id is None:
            owner_id = Accounts(db, 4).create(EMAIL, PASSWORD, admin=False).id
        with db.pool.connection() as conn:
            conn.execute(SEED["bench_seed_widgets"],
                         {"owner_id": owner_id, "first": first, "last": last})
    finally:
        db.close()
    return owner_id


def query(url: str, name: str) -> list:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(QUERIES[name]).fetchall()


def mistake(url: str, env: dict[str, str]) -> None:
    """``DELETE FROM widgets`` as an operator would type it, in psql."""
    run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
        QUERIES["backup_delete_all_widgets"], env=env, timeout=60)
    assert query(url, "backup_widget_names") == []


def drill(url: str, env: dict[str, str], where: list[str], config: Path, stanza: str,
          pg: list[str], front) -> None:
    """The drill itself; ``where`` selects the databases for bin/backup and bin/restore."""
    owner = seed(url, 1, 500)
    run(BIN / "backup", *where, "--full", env=env)
    listing = json.loads(run(BIN / "backup", *where, "--list", "--json", env=env).stdout)
    assert [b["type"] for b in listing[0]["backup"]] == ["full"]
    assert listing[0]["status"]["message"] == "ok"
    pgbackrest(config, stanza, env, "verify")
    pgbackrest(config, stanza, env, "check", *pg)
    seed(url, 501, 1000, owner)
    moment = query(url, "backup_now")[0][0]
    seed(url, 1001, 1001, owner)  # committed after T: must not come back
    mistake(url, env)
    run(BIN / "restore", *where, "--time", moment, env=env)
    assert [name for (name,) in query(url, "backup_widget_names")] == EXPECTED
    token = json.loads(call(front, "POST", "/api/v1/auth/login",
                            data={"email": EMAIL, "password": PASSWORD}).raw)["access_token"]
    reply = call(front, "GET", "/api/v1/widgets?per_page=5", token=token)
    assert reply.status == 200 and json.loads(reply.raw)["total_items"] == 1000
    # Archiving goes on, on the restored server's new timeline: a new backup and check pass.
    run(BIN / "backup", *where, "--incr", env=env)
    pgbackrest(config, stanza, env, "check", *pg)


def pgbackrest(config: Path, stanza: str, env: dict[str, str], *args: str) -> None:
    result = pgbr.run_pgbackrest(config, stanza, localdb.cluster_owner(), *args,
                                   env={k: v for k, v in env.items() if k == "PGPASSWORD"},
                                   check=False)
    assert result.returncode == 0, f"pgbackrest {args}: {result.stdout}{result.stderr}"


# -- without a database: the options and the time format ------------------------------------

@pytest.mark.parametrize("text", ["2026-12-04 07:30:00+00", "2026-12-04 07:30:00.123456+00",
                                  "2026-12-04T07:30:00+01:00", "2026-12-04 07:30:00-0530"])
def test_restore_accepts_a_moment_with_its_offset(text):
    moment = backup.parse_time(text)
    assert moment.tzinfo is not None
    assert pgbr.pg_time(moment).endswith("+00")


@pytest.mark.parametrize("text", ["2026-12-04 07:30:00", "yesterday", "2026-13-04 07:30:00+00",
                                  "2026-12-04 07:30+00", ""])
def test_restore_refuses_a_moment_without_offset_or_malformed(text):
    with pytest.raises(pgbr.BackupError, match="--time"):
        backup.parse_time(text)


def test_restore_refuses_a_bad_time_before_touching_anything(capsys, monkeypatch):
    monkeypatch.setattr(backup.LocalBackups, "restore", lambda *a: pytest.fail("restored"))
    assert backup.restore_main(["--time", "2026-12-04 07:30:00"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("widgetsvc: --time") and len(err.splitlines()) == 1


def test_restore_wants_exactly_one_target():
    for argv in ([], ["--latest", "--time", "2026-12-04 07:30:00+00"]):
        with pytest.raises(SystemExit) as exit_:
            backup.restore_main(argv)
        assert exit_.value.code == 2


def test_backup_types_exclude_each_other():
    with pytest.raises(SystemExit) as exit_:
        backup.backup_main(["--full", "--incr"])
    assert exit_.value.code == 2


def test_restore_args_target_the_moment_in_utc():
    moment = backup.parse_time("2026-12-04 08:30:00.5+01")
    assert pgbr.restore_args(moment) == [
        "--type=time", "--target=2026-12-04 07:30:00.500000+00", "--target-action=promote"]
    assert pgbr.restore_args(None) == ["--type=default"]


def test_the_cluster_archives_from_every_node_into_one_stanza(tmp_path):
    from widgetsvc.ops.cluster.hacluster import HACluster

    cluster = HACluster(tmp_path / "c")
    commands = [json.loads(node.archive_command()) for node in cluster.patroni]
    for node, command in zip(("pg1", "pg2"), commands, strict=True):
        assert "--stanza=cluster" in command and command.endswith(" archive-push %p")
        assert f"--pg1-path={cluster.node_dir(node) / 'data'}" in command


# -- the drills -----------------------------------------------------------------------------

@pytest.fixture
def repo():
    path = localdb.reachable_dir(VAR_DIR / f"backup-test-{os.getpid()}-repo")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.e2e
def test_local_drill_restores_exactly_the_widgets_before_t(repo, tmp_path):
    from tests.helpers import LiveServer

    env = {**os.environ, "WIDGETSVC_PG_FSYNC": "off", "BACKUP_REPO": str(repo),
           "BACKUP_RETENTION": "1"}
    root = VAR_DIR / f"backup-test-{os.getpid()}"
    cluster = PrivatePostgres(root)
    cluster.start()
    server = None
    try:
        url = cluster.create_database("widgetsvc")
        migrate(url, log=lambda _m: None)
        server = LiveServer(url, tmp_path / "serve.log").start()
        drill(url, env, ["--pgdir", str(root)], cluster.root / "pgbackrest.conf",
              backup.LOCAL_STANZA, [], server.port)
        # A moment after the last write: nothing in the archive commits after it, yet replay
        # must stop there (bin/restore writes one commit first) rather than fail.
        moment = query(url, "backup_now")[0][0]
        run(BIN / "restore", "--pgdir", root, "--time", moment, env=env, timeout=300)
        assert [name for (name,) in query(url, "backup_widget_names")] == EXPECTED
        future = run_failing(BIN / "restore", "--pgdir", root, "--time",
                             "2999-01-01 00:00:00+00", env=env)
        assert "in the future" in future.stderr and len(future.stderr.splitlines()) == 1
    finally:
        if server is not None:
            server.stop()
        cluster.destroy()


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.own_cluster
def test_cluster_drill_restores_exactly_the_widgets_before_t(repo):
    from widgetsvc.ops.cluster.backup import ClusterBackups
    from widgetsvc.ops.cluster.hacluster import HACluster

    if os.geteuid() != 0 and missing_packages():
        pytest.skip(f"not root, and {', '.join(missing_packages())} not installed")
    directory = localdb.reachable_dir(VAR_DIR / f"cluster-backup-test-{os.getpid()}")
    env = {**os.environ, "WIDGETSVC_PG_FSYNC": "off", "BACKUP_REPO": str(repo),
           "SECRET_KEY": SECRET, "WIDGETSVC_ENV": "test", "BCRYPT_ROUNDS": "4",
           "AUTH_RATE_LIMIT": "0", "WEB_CONCURRENCY": "1"}
    where = ["--cluster", "--dir", str(directory)]
    try:
        run(BIN / "cluster", "--dir", directory, "up", "--instances", "2", env=env)
        cluster = HACluster(directory)
        backups = ClusterBackups(cluster, ToolSettings.from_env(env))
        leader = cluster.leader()
        drill(cluster.leader_url(), {**env, "PGPASSWORD": cluster.state["secrets"]["superuser"]},
              where, backups.config, "cluster", backups.pg_args(leader),
              urlsplit(cluster.front_url))
        roles = sorted(m["role"] for m in HACluster(directory).members())
        assert roles == ["leader", "sync_standby"]
    finally:
        subprocess.run([str(BIN / "cluster"), "--dir", str(directory), "down", "--purge"],
                       env=env, capture_output=True, timeout=300, check=False)


def test_a_cluster_outside_var_cluster_keeps_its_own_repository(tmp_path):
    """One stanza per repository: a --dir cluster (a test's) never shares var/backups with
    the default cluster, and its repository goes with ``down --purge``; BACKUP_REPO wins."""
    from widgetsvc.ops.cluster.backup import ClusterBackups
    from widgetsvc.ops.cluster.hacluster import HACluster

    unset = ToolSettings.from_env({})
    default = ClusterBackups(HACluster(VAR_DIR / "cluster"), unset)
    elsewhere = HACluster(VAR_DIR / "cluster-elsewhere")
    assert default.repo == localdb.reachable_dir(VAR_DIR / "backups")
    assert ClusterBackups(elsewhere, unset).repo == elsewhere.root / "backups"
    assert ClusterBackups(elsewhere, ToolSettings.from_env({"BACKUP_REPO": "/srv/r"})).repo == \
        localdb.reachable_dir(Path("/srv/r"))
