"""WAL archiving for the cluster: pgBackRest's repository and configuration, and its stanza
on the leader (``bin/cluster up`` sets it up; ``bin/backup --cluster`` builds on it).

Both nodes carry the same ``archive_command`` (into one repository, one stanza): PostgreSQL
archives only on the primary, so after a failover the new leader goes on archiving where the
old one stopped, on its new timeline.
"""

from __future__ import annotations

import subprocess

from widgetsvc.ops import localdb, safefs
from widgetsvc.ops.cluster.part import Log
from widgetsvc.ops.cluster.state import NODES, SUPERUSER, ClusterState
from widgetsvc.ops.localdb import reachable_dir
from widgetsvc.ops.pgbackrest import (
    CLUSTER_STANZA,
    BackupError,
    config_text,
    ensure_pgbackrest,
    prepare_repo,
    repo_path,
    run_pgbackrest,
)
from widgetsvc.ops.settings import ToolSettings


class WalArchive:
    """The cluster's pgBackRest repository, with the leader as pgBackRest's server."""

    def __init__(self, cluster: ClusterState, tools: ToolSettings | None = None):
        self.cluster = cluster
        self.settings = tools or cluster.settings  # BACKUP_REPO, BACKUP_RETENTION
        self.repo = repo_path(self.settings.backup_repo)
        if self.settings.backup_repo is None and cluster.root != reachable_dir(
                localdb.VAR_DIR / "cluster"):
            # A cluster elsewhere (--dir, a test's) keeps its own: a repository holds one
            # cluster's stanza (its system identifier), and a throwaway one goes with --purge.
            self.repo = cluster.root / "backups"
        self.work = cluster.root / "pgbackrest"
        self.config = cluster.pgbackrest_config
        self.stanza = CLUSTER_STANZA
        self.owner = cluster.owner

    def write_config(self) -> None:
        prepare_repo(self.repo, self.work, self.owner)
        text = config_text(repo=self.repo, work=self.work, stanza=self.stanza,
                           keep=self.settings.backup_retention)
        if safefs.read_text(self.config) != text:
            safefs.write_file(self.config, text, 0o600, self.owner)

    def require(self) -> None:
        if not self.cluster.exists:
            raise BackupError(f"no cluster in {self.cluster.root}: bin/cluster up first")

    def pg_args(self, node: str) -> list[str]:
        index = NODES.index(node)
        return [f"--pg1-path={self.cluster.node_dir(node) / 'data'}",
                f"--pg1-port={self.cluster.ports['postgres'][index]}",
                f"--pg1-socket-path={self.cluster.socket_dir(node)}",
                f"--pg1-user={SUPERUSER}"]

    def pgbackrest(self, node: str | None, *args: str,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
        pg = self.pg_args(node) if node else []
        return run_pgbackrest(self.config, self.stanza, self.owner, *args[:1], *pg, *args[1:],
                              env={"PGPASSWORD": self.cluster.secrets["superuser"]},
                              check=check)

    def setup(self, log: Log) -> str:
        """The stanza on the leader, checked (its WAL reaches the repository); the leader."""
        self.require()
        ensure_pgbackrest()
        self.write_config()
        node = self.cluster.leader()
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

    def after_up(self, log: Log) -> None:
        """Once the leader serves: the stanza, so that WAL archiving succeeds from the start
        (a failing archive_command would keep every WAL segment on disk)."""
        try:
            self.setup(log)
        except BackupError as exc:
            log(f"cluster: warning: WAL archiving is not working yet: {exc}")
