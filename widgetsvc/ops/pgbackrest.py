"""pgBackRest, for the private cluster and for ``bin/cluster``'s alike: its configuration, the
``archive_command`` PostgreSQL runs, running it as the cluster's owner, and the steps of a
point-in-time restore both restores share. Imports no cluster: the cluster's parts build on it.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg

from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.ops import apt, localdb, safefs

CLUSTER_STANZA = "cluster"


class BackupError(RuntimeError):
    """pgBackRest or the database refused; the message carries what it said."""


def queries() -> dict[str, str]:
    return load_queries(SQL_DIR / "backup")


# -- settings ---------------------------------------------------------------------------------
def repo_path(repo: Path | None) -> Path:
    """The repository: ``repo`` (``BACKUP_REPO``, from ``ToolSettings``), else
    ``var/backups`` (relocated like the clusters when the owner cannot reach the checkout)."""
    return localdb.reachable_dir(repo or localdb.VAR_DIR / "backups")


def pg_time(moment: dt.datetime) -> str:
    """The target as pgBackRest passes it to recovery_target_time."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


# -- pgBackRest -------------------------------------------------------------------------------
def ensure_pgbackrest() -> str:
    """The ``pgbackrest`` program; as root, Debian's package is installed when missing."""
    found = shutil.which("pgbackrest") or (
        "/usr/bin/pgbackrest" if os.access("/usr/bin/pgbackrest", os.X_OK) else None)
    if found:
        return found
    if os.geteuid() != 0:
        raise BackupError("pgbackrest is not installed: sudo apt-get install pgbackrest")
    apt.install(["--no-install-recommends", "pgbackrest"])
    found = shutil.which("pgbackrest")
    if not found:
        raise BackupError("apt-get installed pgbackrest but it is still not found")
    return found


def config_text(*, repo: Path, work: Path, stanza: str, keep: int,
                pg: Mapping[str, str] | None = None) -> str:
    """pgBackRest's configuration: one repository, logs and locks of our own (two clones on a
    machine never share a lock), and the stanza's server when it is fixed."""
    lines = ["[global]", f"repo1-path={repo}", f"repo1-retention-full={keep}",
             f"log-path={work / 'log'}", f"lock-path={work / 'lock'}",
             f"spool-path={work / 'spool'}", "log-level-console=warn", "log-level-file=info",
             "compress-type=lz4", "process-max=2", "start-fast=y", "delta=y",
             "archive-timeout=120", "", f"[{stanza}]"]
    lines += [f"{key}={value}" for key, value in (pg or {}).items()]
    return "\n".join(lines) + "\n"


def archive_command(config: Path, stanza: str, data_dir: Path | None = None) -> str:
    """What PostgreSQL runs for each finished WAL segment."""
    words = ["pgbackrest", f"--config={config}", f"--stanza={stanza}"]
    if data_dir is not None:
        words.append(f"--pg1-path={data_dir}")
    return " ".join(shlex.quote(w) for w in words) + " archive-push %p"


def run_pgbackrest(config: Path, stanza: str, owner: pwd.struct_passwd, *args: str,
                   env: Mapping[str, str] | None = None, capture: bool = True,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
    """``pgbackrest --config=... --stanza=... ARGS`` as the cluster's owner."""
    kwargs: dict = {}
    if os.geteuid() == 0 and owner.pw_uid != 0:
        kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    argv = [ensure_pgbackrest(), f"--config={config}", f"--stanza={stanza}", *args]
    result = subprocess.run(
        argv, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(config.parent),
                   **(env or {})},
        cwd=str(config.parent), capture_output=capture, text=True, stdin=subprocess.DEVNULL,
        check=False, **kwargs)
    if check and result.returncode != 0:
        said = ((result.stdout or "") + (result.stderr or "")).strip()
        raise BackupError(f"pgbackrest {' '.join(args[:1])} failed ({result.returncode}): "
                          f"{said[-3000:]}")
    return result


def prepare_repo(repo: Path, work: Path, owner: pwd.struct_passwd) -> None:
    """The repository and pgBackRest's working directories, the owner's, 0700."""
    for directory in (repo, work, work / "log", work / "lock", work / "spool"):
        localdb.make_dir(directory, owner)


def restore_args(target: dt.datetime | None) -> list[str]:
    if target is None:
        return ["--type=default"]  # every archived WAL, then a new timeline
    return ["--type=time", f"--target={pg_time(target)}", "--target-action=promote"]


def refuse_future(target: dt.datetime | None) -> None:
    """A moment still to come cannot be reached by replaying what was archived."""
    if target is not None and target > dt.datetime.now(dt.UTC):
        raise BackupError(f"--time {pg_time(target)} is in the future: --latest restores "
                          "everything archived")


def mark_commit(connect, log) -> None:
    """One commit after the target, so that replay finds where to stop (``mark_commit``)."""
    try:
        with connect() as conn:
            conn.execute(queries()["mark_commit"])
    except psycopg.Error as exc:
        log(f"backup: warning: could not write a last commit: {str(exc).strip()}")


def wait_promoted(connect, log, *, alive, log_file: Path, timeout: float = 3600.0) -> None:
    """Until the restored server has replayed to its target and accepts writes; a server that
    stopped meanwhile (a target it could not reach) is reported with its log."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            with connect() as conn:
                if not conn.execute(queries()["in_recovery"]).fetchone()[0]:
                    return
        except psycopg.Error as exc:
            last_error = str(exc).strip()
            if not alive():
                text = safefs.read_text(log_file) or ""
                fatal = [line for line in text.splitlines() if "FATAL" in line][-3:]
                raise BackupError("the restored server stopped during recovery: "
                                  + (" | ".join(fatal) or last_error)
                                  + f" (log: {log_file})") from None
        time.sleep(0.3)
    raise BackupError(f"the restored server did not finish recovery: {last_error}")
