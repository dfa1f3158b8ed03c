"""pgBackRest for ``bin/cluster``: WAL archiving from whichever node leads, backups taken on the
leader, and a point-in-time restore of the whole cluster (``bin/backup --cluster``,
``bin/restore --cluster``).

Both nodes carry the same ``archive_command`` (into one repository, one stanza): PostgreSQL
archives only on the primary, so after a failover the new leader goes on archiving where the
old one stopped, on its new timeline.

A restore cannot go through Patroni (it would start the restored data as a replica of a
history that no longer exists), so: Patroni stops on both nodes, its keys in etcd are deleted
(the leader's last position would stop the restored node from leading), the former leader's
node is restored and replays WAL to the target with a PostgreSQL of our own, then Patroni takes
that data over as the new leader and clones the other node from it again.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg

from widgetsvc.ops import localdb, plumbing, safefs
from widgetsvc.ops.backup import (
    CLUSTER_STANZA,
    BackupError,
    archive_command,
    config_text,
    ensure_pgbackrest,
    mark_commit,
    pg_time,
    prepare_repo,
    queries,
    refuse_future,
    repo_path,
    restore_args,
    retention,
    run_pgbackrest,
    wait_promoted,
)
from widgetsvc.ops.cluster.topology import (
    ETCD_PREFIX,
    HOST,
    NODES,
    SCOPE,
    SUPERUSER,
    Cluster,
    ClusterError,
    _http_status,
    _owner,
    _post_json,
    reachable_dir,
)

# Settings the restored server needs while it replays under our pg_ctl, not Patroni (its
# postgresql.conf may be the other node's): reset again before Patroni takes over.
_RESTORE_SETTINGS = ("port", "listen_addresses", "unix_socket_directories", "hba_file",
                     "ident_file", "synchronous_standby_names", "archive_command")
_RECOVERY_SETTINGS = ("restore_command", "recovery_target", "recovery_target_time",
                      "recovery_target_action", "recovery_target_timeline",
                      "recovery_target_lsn", "recovery_target_xid", "recovery_target_name",
                      "recovery_target_inclusive")


def config_path(cluster: Cluster) -> Path:
    return cluster.root / "pgbackrest.conf"


def node_archive_command(cluster: Cluster, node: str) -> str:
    """The node's ``archive_command`` as a YAML (JSON) string for patroni.yml."""
    data_dir = cluster.node_dir(node) / "data"
    return json.dumps(archive_command(config_path(cluster), CLUSTER_STANZA, data_dir))


class ClusterBackups:
    """bin/cluster's backups: the repository, and the leader as pgBackRest's server."""

    def __init__(self, cluster: Cluster, env: Mapping[str, str] | None = None):
        self.cluster = cluster
        self.env = os.environ if env is None else env
        self.repo = repo_path(self.env)
        if not self.env.get("BACKUP_REPO") and cluster.root != reachable_dir(
                localdb.VAR_DIR / "cluster"):
            # A cluster elsewhere (--dir, a test's) keeps its own: a repository holds one
            # cluster's stanza (its system identifier), and a throwaway one goes with --purge.
            self.repo = cluster.root / "backups"
        self.work = cluster.root / "pgbackrest"
        self.config = config_path(cluster)
        self.stanza = CLUSTER_STANZA
        self.owner = _owner()

    # -- set-up (bin/cluster up) -------------------------------------------------------------
    def write_config(self) -> None:
        prepare_repo(self.repo, self.work, self.owner)
        text = config_text(repo=self.repo, work=self.work, stanza=self.stanza,
                           keep=retention(self.env))
        if safefs.read_text(self.config) != text:
            safefs.write_file(self.config, text, 0o600, self.owner)

    def _require(self) -> None:
        if not self.cluster.exists:
            raise BackupError(f"no cluster in {self.cluster.root}: bin/cluster up first")

    def leader(self) -> str | None:
        return next((m["name"] for m in self.cluster.members()
                     if m.get("role") == "leader" and m.get("state") == "running"), None)

    def _pg_args(self, node: str) -> list[str]:
        index = NODES.index(node)
        return [f"--pg1-path={self.cluster.node_dir(node) / 'data'}",
                f"--pg1-port={self.cluster.ports['postgres'][index]}",
                f"--pg1-socket-path={self.cluster.socket_dir(node)}",
                f"--pg1-user={SUPERUSER}"]

    def _secret_env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.cluster.state["secrets"]["superuser"]}

    def pgbackrest(self, node: str | None, *args: str,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
        pg = self._pg_args(node) if node else []
        return run_pgbackrest(self.config, self.stanza, self.owner, *args[:1], *pg, *args[1:],
                              env=self._secret_env(), check=check)

    def setup(self, log) -> str:
        """The stanza on the leader, checked (its WAL reaches the repository); the leader."""
        self._require()
        ensure_pgbackrest()
        self.write_config()
        node = self.leader()
        if node is None:
            raise BackupError("the cluster has no running leader (bin/cluster status)")
        self.pgbackrest(node, "stanza-create")
        result = self.pgbackrest(node, "check", check=False)
        if result.returncode != 0:
            said = (result.stdout + result.stderr).strip()
            hint = ("; a cluster made before WAL archiving existed needs one restart: "
                    "bin/cluster down && bin/cluster up") if "archive_mode" in said else ""
            raise BackupError(f"pgbackrest check on {node} failed: {said[-1500:]}{hint}")
        log(f"backup: the cluster archives its WAL into {self.repo} (leader {node})")
        return node

    # -- bin/backup --cluster ----------------------------------------------------------------
    def backup(self, kind: str | None, log) -> None:
        node = self.setup(log)
        started = time.monotonic()
        self.pgbackrest(node, "backup", *([f"--type={kind}"] if kind else []))
        log(f"backup: {kind or 'incr (full when there is none)'} backup of the leader ({node}) "
            f"done in {time.monotonic() - started:.1f} s into {self.repo}")

    def info(self, as_json: bool) -> str:
        self._require()
        self.write_config()
        return self.pgbackrest(None, "info", *(["--output=json"] if as_json else [])).stdout

    # -- bin/restore --cluster ---------------------------------------------------------------
    def restore(self, target: dt.datetime | None, log) -> None:
        self._require()
        ensure_pgbackrest()
        self.write_config()
        cluster = self.cluster
        cluster.bindir = localdb.ensure_bindir()  # what Cluster.up sets for its parts
        cluster.owner = self.owner
        refuse_future(target)
        leader = self.leader()
        if leader is not None:
            mark_commit(lambda: self._connect(leader), log)
            result = self.pgbackrest(leader, "check", check=False)  # archive the current WAL
            if result.returncode != 0:
                log("backup: warning: could not archive the current WAL first: "
                    f"{(result.stdout + result.stderr).strip()[-300:]}")
        node = leader or NODES[0]
        other = next(n for n in NODES if n != node)
        started = time.monotonic()
        for name in NODES:
            log(f"backup: stopping Patroni {name}")
            cluster._stop_part(f"patroni-{name}", timeout=60)  # noqa: SLF001
        cluster._stop_orphan_postmasters()  # noqa: SLF001
        self._forget_dcs()
        log(f"backup: restoring {node} "
            f"to {pg_time(target) if target else 'the latest archived state'}")
        self.pgbackrest(None, "restore", f"--pg1-path={cluster.node_dir(node) / 'data'}",
                        *restore_args(target))
        self._replay(node, log)
        shutil.rmtree(cluster.node_dir(other) / "data", ignore_errors=True)
        cluster._start_patroni(NODES.index(node), node, log)  # noqa: SLF001
        plumbing.wait_until(lambda: self.leader() == node, timeout=120,
                         what=f"Patroni {node} as leader",
                         log=cluster.node_dir(node) / "patroni.log")
        log(f"backup: cloning {other} from {node} again")
        cluster._start_patroni(NODES.index(other), other, log)  # noqa: SLF001
        cluster._wait_replicated(log, timeout=300)  # noqa: SLF001
        cluster._wait_leader_reachable(timeout=60)  # noqa: SLF001
        url = f"{cluster.front_url}/api/v1/widgets?limit=1"
        plumbing.wait_until(lambda: _http_status(url) in (200, 401), timeout=60,
                         what="the service through the front after the restore")
        log(f"backup: cluster restored in {time.monotonic() - started:.1f} s; serving again "
            f"at {cluster.front_url}")

    def _forget_dcs(self) -> None:
        """Delete Patroni's keys (leader, history, last position) in etcd, as root."""
        keys = self.cluster.state["secrets"]
        answer = _post_json(self.cluster.etcd_url("auth/authenticate"),
                            {"name": "root", "password": keys["etcd_root"]})
        token = answer.get("token")
        if not token:
            raise ClusterError(f"etcd authentication: {answer.get('error', answer)}")
        prefix = f"{ETCD_PREFIX}{SCOPE}/".encode()
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        answer = _post_json(self.cluster.etcd_url("kv/deleterange"),
                            {"key": base64.b64encode(prefix).decode(),
                             "range_end": base64.b64encode(end).decode()},
                            headers={"Authorization": token})
        if "error" in answer:
            raise ClusterError(f"etcd deleterange: {answer['error']}")

    def _replay(self, node: str, log) -> None:
        """Replay to the target with a server of our own, promote, then reset what it needed
        so that Patroni's own settings apply again; stop it."""
        cluster = self.cluster
        index = NODES.index(node)
        data_dir = cluster.node_dir(node) / "data"
        overrides = {
            "port": str(cluster.ports["postgres"][index]),
            "listen_addresses": HOST,
            "unix_socket_directories": str(cluster.socket_dir(node)),
            "hba_file": str(data_dir / "pg_hba.conf"),
            "ident_file": str(data_dir / "pg_ident.conf"),
            "synchronous_standby_names": "",
            "archive_command": archive_command(self.config, self.stanza, data_dir),
        }
        auto = data_dir / "postgresql.auto.conf"
        text = safefs.read_text(auto) or ""
        text += "".join(f"{key} = '{value.replace(chr(39), chr(39) * 2)}'\n"
                        for key, value in overrides.items())
        safefs.write_file(auto, text, 0o600, self.owner)
        log_file = cluster.node_dir(node) / "restore.log"
        pg_ctl = [str(cluster.bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file)]
        self._as_owner([*pg_ctl, "start", "-w", "-t", "600"], log_file)

        try:
            wait_promoted(lambda: self._connect(node), log,
                          alive=lambda: cluster.postmaster_pid(node) is not None,
                          log_file=log_file)
            with self._connect(node) as conn:
                for (ddl,) in conn.execute(queries()["reset_ddl"],
                                           {"names": [*_RESTORE_SETTINGS,
                                                      *_RECOVERY_SETTINGS]}).fetchall():
                    conn.execute(ddl)
                conn.execute(queries()["checkpoint"])
        finally:
            self._as_owner([*pg_ctl, "stop", "-w", "-m", "fast", "-t", "120"], log_file)

    def _connect(self, node: str) -> psycopg.Connection:
        """The node's PostgreSQL as the superuser, on its Unix socket."""
        cluster = self.cluster
        return psycopg.connect(host=str(cluster.socket_dir(node)),
                               port=cluster.ports["postgres"][NODES.index(node)],
                               user=SUPERUSER, dbname="postgres", autocommit=True,
                               password=cluster.state["secrets"]["superuser"],
                               connect_timeout=10)

    def _as_owner(self, argv: list[str], log_file: Path) -> None:
        kwargs: dict = {}
        if os.geteuid() == 0 and self.owner.pw_uid != 0:
            kwargs = {"user": self.owner.pw_uid, "group": self.owner.pw_gid,
                      "extra_groups": []}
        result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                stdin=subprocess.DEVNULL, cwd=str(self.cluster.root),
                                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, **kwargs)
        if result.returncode != 0:
            raise BackupError(f"{Path(argv[0]).name} {argv[-5:]} failed: "
                              f"{(result.stdout + result.stderr).strip()[-500:]}\n"
                              f"{plumbing.tail(log_file)}")


def prepare(cluster: Cluster) -> None:
    """bin/cluster up, before Patroni starts: the configuration its archive_command names."""
    ClusterBackups(cluster).write_config()


def after_up(cluster: Cluster, log) -> None:
    """bin/cluster up, once the leader serves: the stanza, so that WAL archiving succeeds
    from the start (a failing archive_command would keep every WAL segment on disk)."""
    try:
        ClusterBackups(cluster).setup(log)
    except BackupError as exc:
        log(f"cluster: warning: WAL archiving is not working yet: {exc}")
