"""``bin/backup --cluster`` and ``bin/restore --cluster``: backups taken on the leader, and a
point-in-time restore of the whole cluster (WAL archiving itself: ``wal.py``).

A restore cannot go through Patroni (it would start the restored data as a replica of a
history that no longer exists), so: Patroni stops on both nodes, its keys in etcd are deleted
(the leader's last position would stop the restored node from leading), the former leader's
node is restored and replays WAL to the target with a PostgreSQL of our own, then Patroni takes
that data over as the new leader and clones the other node from it again.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from widgetsvc.ops import localdb, plumbing, safefs
from widgetsvc.ops.cluster.hacluster import HACluster
from widgetsvc.ops.cluster.loopback import http_status
from widgetsvc.ops.cluster.patroni import wait_replicated
from widgetsvc.ops.cluster.state import HOST, NODES, SUPERUSER
from widgetsvc.ops.cluster.wal import WalArchive
from widgetsvc.ops.pgbackrest import (
    BackupError,
    archive_command,
    ensure_pgbackrest,
    mark_commit,
    pg_time,
    queries,
    refuse_future,
    restore_args,
    wait_promoted,
)
from widgetsvc.ops.settings import ToolSettings

# Settings the restored server needs while it replays under our pg_ctl, not Patroni (its
# postgresql.conf may be the other node's): reset again before Patroni takes over.
_RESTORE_SETTINGS = ("port", "listen_addresses", "unix_socket_directories", "hba_file",
                     "ident_file", "synchronous_standby_names", "archive_command")
_RECOVERY_SETTINGS = ("restore_command", "recovery_target", "recovery_target_time",
                      "recovery_target_action", "recovery_target_timeline",
                      "recovery_target_lsn", "recovery_target_xid", "recovery_target_name",
                      "recovery_target_inclusive")


class ClusterBackups(WalArchive):
    """bin/cluster's backups and restores."""

    cluster: HACluster

    def __init__(self, cluster: HACluster, tools: ToolSettings | None = None):
        super().__init__(cluster, tools)

    # -- bin/backup --cluster ----------------------------------------------------------------
    def backup(self, kind: str | None, log) -> None:
        node = self.setup(log)
        started = time.monotonic()
        self.pgbackrest(node, "backup", *([f"--type={kind}"] if kind else []))
        log(f"backup: {kind or 'incr (full when there is none)'} backup of the leader ({node}) "
            f"done in {time.monotonic() - started:.1f} s into {self.repo}")

    def info(self, as_json: bool) -> str:
        self.require()
        self.write_config()
        return self.pgbackrest(None, "info", *(["--output=json"] if as_json else [])).stdout

    # -- bin/restore --cluster ---------------------------------------------------------------
    def restore(self, target: dt.datetime | None, log) -> None:
        self.require()
        ensure_pgbackrest()
        self.write_config()
        cluster = self.cluster
        cluster.bindir = localdb.ensure_bindir()  # what HACluster.up sets for its parts
        refuse_future(target)
        leader = self.cluster.leader()
        if leader is not None:
            mark_commit(lambda: self._connect(leader), log)
            result = self.pgbackrest(leader, "check", check=False)  # archive the current WAL
            if result.returncode != 0:
                log("backup: warning: could not archive the current WAL first: "
                    f"{(result.stdout + result.stderr).strip()[-300:]}")
        node = leader or NODES[0]
        other = next(n for n in NODES if n != node)
        started = time.monotonic()
        for part in cluster.patroni:
            log(f"backup: stopping Patroni {part.node}")
            part.stop()
        for part in cluster.patroni:
            part.stop_orphan_postmaster()
        cluster.etcd.forget_patroni()
        log(f"backup: restoring {node} "
            f"to {pg_time(target) if target else 'the latest archived state'}")
        self.pgbackrest(None, "restore", f"--pg1-path={cluster.node_dir(node) / 'data'}",
                        *restore_args(target))
        self._replay(node, log)
        shutil.rmtree(cluster.node_dir(other) / "data", ignore_errors=True)
        cluster.patroni[NODES.index(node)].up(log, wait=False)
        plumbing.wait_until(lambda: self.cluster.leader() == node, timeout=120,
                            what=f"Patroni {node} as leader",
                            log=cluster.node_dir(node) / "patroni.log")
        log(f"backup: cloning {other} from {node} again")
        cluster.patroni[NODES.index(other)].up(log, wait=False)
        wait_replicated(cluster, log, timeout=300)
        cluster.haproxy.wait(timeout=60)
        url = f"{cluster.front_url}/api/v1/widgets?limit=1"
        plumbing.wait_until(lambda: http_status(url) in (200, 401), timeout=60,
                            what="the service through the front after the restore")
        log(f"backup: cluster restored in {time.monotonic() - started:.1f} s; serving again "
            f"at {cluster.front_url}")

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
