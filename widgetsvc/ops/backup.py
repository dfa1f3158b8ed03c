"""``bin/backup`` and ``bin/restore``: pgBackRest backups of the private cluster (``var/pg``), and
with ``--cluster`` of ``bin/cluster`` (``widgetsvc/ops/cluster/backup.py``), restored to a moment.

WAL archiving is what makes a restore to any moment possible: PostgreSQL hands each finished
WAL segment to ``pgbackrest archive-push``, which stores it in the repository next to the
backups. A restore copies the newest backup from before the target, then PostgreSQL replays the
archived WAL up to the target time and starts a new timeline there.

The private cluster gets archiving with its first ``bin/backup`` (``ALTER SYSTEM``, kept in its
``postgresql.auto.conf``, and one restart: ``archive_mode`` wants one), so the test suite's
throwaway clusters never archive. Everything pgBackRest writes (repository, logs, locks) is the
cluster owner's: ``archive-push`` runs as the server does (``widgetsvc/ops/pgbackrest.py``).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from widgetsvc.ops import cmdline, localdb, safefs
from widgetsvc.ops.cluster import backup as cluster_backup
from widgetsvc.ops.cluster.hacluster import HACluster
from widgetsvc.ops.cluster.packages import MissingPackages
from widgetsvc.ops.cluster.state import ClusterError
from widgetsvc.ops.pgbackrest import (
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
    run_pgbackrest,
    wait_promoted,
)
from widgetsvc.ops.settings import DEFAULT_BACKUP_RETENTION, ToolSettings

LOCAL_STANZA = "local"
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f%z")


def parse_time(text: str) -> dt.datetime:
    """``YYYY-MM-DD HH:MM:SS+00`` (seconds may have a fraction; the offset is required: a
    moment without one would be read in the server's time zone)."""
    raw = text.strip().replace("T", " ", 1)
    if len(raw) >= 3 and raw[-3] in "+-" and raw[-2:].isdigit():
        raw += "00"  # "+00" -> "+0000" for strptime
    for fmt in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt)
        except ValueError:
            continue
    raise BackupError(f"--time {text!r}: not a moment like \"2026-12-04 07:30:00+00\" "
                      "(date, time, and the UTC offset)")



# -- the private cluster ----------------------------------------------------------------------
class LocalBackups:
    """pgBackRest for one private cluster (``var/pg`` unless the tests name another)."""

    def __init__(self, cluster: localdb.PrivatePostgres, tools: ToolSettings | None = None):
        self.cluster = cluster
        self.tools = tools or ToolSettings.from_env()
        self.repo = repo_path(self.tools.backup_repo)
        self.work = cluster.root / "pgbackrest"
        self.config = cluster.root / "pgbackrest.conf"
        self.stanza = LOCAL_STANZA

    def write_config(self) -> None:
        prepare_repo(self.repo, self.work, self.cluster.owner)
        text = config_text(repo=self.repo, work=self.work, stanza=self.stanza,
                           keep=self.tools.backup_retention, pg={
                               "pg1-path": str(self.cluster.data_dir),
                               "pg1-socket-path": str(self.cluster.socket_dir),
                               "pg1-port": str(self.cluster.port),
                               "pg1-user": localdb.SUPERUSER})
        if safefs.read_text(self.config) != text:
            safefs.write_file(self.config, text, 0o600, self.cluster.owner)

    def pgbackrest(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return run_pgbackrest(self.config, self.stanza, self.cluster.owner, *args, **kwargs)

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.cluster.url("postgres"), autocommit=True, connect_timeout=10)

    def enable_archiving(self, log) -> None:
        """archive_mode on and archive_command to this repository (restart when changed)."""
        command = archive_command(self.config, self.stanza)
        with self._connect() as conn:
            mode, current = conn.execute(queries()["archive_settings"]).fetchone()
            if mode == "on" and current == command:
                return
            for (ddl,) in conn.execute(queries()["archive_ddl"], {"command": command}):
                conn.execute(ddl)
        log("backup: WAL archiving turned on; restarting the private cluster once")
        self.cluster.stop()
        self.cluster.start()

    def setup(self, log) -> None:
        """Started, archiving into the repository, stanza created and checked."""
        ensure_pgbackrest()
        self.cluster.start()
        self.write_config()
        self.enable_archiving(log)
        self.pgbackrest("stanza-create")
        self.pgbackrest("check")

    def backup(self, kind: str | None, log) -> None:
        self.setup(log)
        started = time.monotonic()
        self.pgbackrest("backup", *([f"--type={kind}"] if kind else []))
        log(f"backup: {kind or 'incr (full when there is none)'} backup done in "
            f"{time.monotonic() - started:.1f} s into {self.repo}")

    def info(self, as_json: bool) -> str:
        if not self.config.exists():
            raise BackupError(f"no backups of {self.cluster.data_dir} yet: run bin/backup")
        self.write_config()
        return self.pgbackrest("info", *(["--output=json"] if as_json else [])).stdout

    def restore(self, target: dt.datetime | None, log) -> None:
        """Stop, restore the newest backup from before ``target`` (``None``: the latest state
        the archive holds), replay WAL to it, promote, and leave the cluster running."""
        if not self.config.exists():
            raise BackupError(f"no backups of {self.cluster.data_dir} yet: run bin/backup")
        ensure_pgbackrest()
        self.write_config()
        refuse_future(target)
        if self.cluster.is_running():
            # The WAL being written now is archived only once full: switch and wait for it,
            # or the last writes before the target would not be in the archive.
            mark_commit(self._connect, log)
            result = self.pgbackrest("check", check=False)
            if result.returncode != 0:
                log("backup: warning: could not archive the current WAL first "
                    f"({(result.stderr or result.stdout).strip()[-300:]})")
            log("backup: stopping the private cluster")
            self.cluster.stop()
        started = time.monotonic()
        localdb.make_dir(self.cluster.data_dir, self.cluster.owner)  # a lost data directory
        self.pgbackrest("restore", *restore_args(target))
        log(f"backup: files restored in {time.monotonic() - started:.1f} s; replaying WAL")
        self.cluster.start()
        wait_promoted(self._connect, log, alive=self.cluster.is_running,
                      log_file=self.cluster.log_file)
        log(f"backup: restored to {pg_time(target) if target else 'the latest archived state'}"
            f" in {time.monotonic() - started:.1f} s; the cluster is running")



# -- the commands -----------------------------------------------------------------------------
_ENVIRONMENT = [
    ("BACKUP_REPO", "the pgBackRest repository (absolute; var/backups)"),
    ("BACKUP_RETENTION", f"full backups kept ({DEFAULT_BACKUP_RETENTION}); older ones and their "
                         "WAL expire"),
    ("WIDGETSVC_CLUSTER_DIR", "with --cluster: the cluster's directory (--dir wins)"),
    ("WIDGETSVC_PG_OS_USER", "as root: the unprivileged user that owns the clusters"),
]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _target(args, tools: ToolSettings) -> tuple[str, object]:
    """The backups of the cluster the arguments name, with the settings read once."""
    if getattr(args, "cluster", False):
        cluster = HACluster(Path(args.dir).resolve() if args.dir else None)
        return "cluster", cluster_backup.ClusterBackups(cluster)
    where = Path(args.pgdir).resolve() if args.pgdir else localdb.VAR_DIR / "pg"
    return "local", LocalBackups(localdb.PrivatePostgres(where), tools)


def _add_where(parser: cmdline.Parser) -> None:
    parser.add_argument("--cluster", action="store_true",
                        help="bin/cluster's databases instead of the private var/pg")
    parser.add_argument("--dir", help="with --cluster: its directory (default var/cluster)")
    parser.add_argument("--pgdir", help="the private cluster's directory (default var/pg)")


def backup_main(argv: list[str] | None = None) -> int:
    """``bin/backup``: a backup (or the list of them)."""
    parser = cmdline.Parser(
        "bin/backup", "Back up the private PostgreSQL (var/pg), or with --cluster bin/cluster's, "
        "with pgBackRest; WAL archiving makes any later moment restorable (bin/restore).",
        details="""
The first backup turns WAL archiving on (the private cluster restarts once). Without a type,
pgBackRest's default: incremental, or full when the repository has none. Backups older than
the BACKUP_RETENTION newest full ones expire after each backup, with their WAL.

  bin/backup --full && bin/backup --list""",
        environment=_ENVIRONMENT)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--full", action="store_const", const="full", dest="kind",
                      help="a full backup (every file)")
    kind.add_argument("--diff", action="store_const", const="diff", dest="kind",
                      help="what changed since the last full backup")
    kind.add_argument("--incr", action="store_const", const="incr", dest="kind",
                      help="what changed since the last backup of any type")
    kind.add_argument("--list", action="store_true",
                      help="list the backups and the archived WAL (pgbackrest info)")
    parser.add_argument("--json", action="store_true", help="with --list: pgBackRest's JSON")
    _add_where(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    def command() -> int:
        tools = ToolSettings.from_env()  # every setting refused in one line before anything runs
        _, backups = _target(args, tools)
        if args.list:
            text = backups.info(args.json)
            print(text, end="" if text.endswith("\n") else "\n")
        else:
            backups.backup(args.kind, _log)
        return 0

    return _run(command)


def restore_main(argv: list[str] | None = None) -> int:
    """``bin/restore``: the databases as they were at a moment."""
    parser = cmdline.Parser(
        "bin/restore", "Restore the private PostgreSQL (var/pg), or with --cluster bin/cluster's, "
        "to a moment (--time) or to the latest archived state (--latest), and start it again.",
        details="""
Everything written after the moment is lost (the restored server starts a new timeline):
take a bin/backup first if that could matter. With --cluster: Patroni stops on both nodes,
the leader's node is restored and promoted, the other node is cloned from it again, and the
service's instances reconnect.

  bin/restore --time "2026-12-04 07:30:00+00"
""",
        environment=_ENVIRONMENT)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--time", help='the moment, "YYYY-MM-DD HH:MM:SS+00" (UTC offset '
                                      "required; seconds may have a fraction)")
    which.add_argument("--latest", action="store_true",
                       help="every archived transaction (after losing the data directory)")
    _add_where(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    def command() -> int:
        target = parse_time(args.time) if args.time else None
        tools = ToolSettings.from_env()  # every setting refused in one line before anything runs
        _, backups = _target(args, tools)
        backups.restore(target, _log)
        return 0

    return _run(command)


def _run(command) -> int:
    return cmdline.run(command, (BackupError, localdb.LocalDBError, ClusterError,
                                 MissingPackages, safefs.UnsafePath, psycopg.Error))


if __name__ == "__main__":
    raise SystemExit(backup_main())
