"""Apply ``sql/migrations/NNNN_*.sql`` in order with psql, each file in one transaction.

The same thing a DBA does by hand (see README): psql with ``ON_ERROR_STOP``, one transaction per
file, and a row in ``schema_migrations`` written in that same transaction. A file that fails
leaves the database as it was and stops the run.

Each file runs with a ``lock_timeout`` (``MIGRATE_LOCK_TIMEOUT``, 2 s): a migration that rewrites
a table (0007) waits for its ACCESS EXCLUSIVE lock behind any open transaction on that table,
and every request for the table queues behind that wait. It gives up instead, rolls back, and
is tried again (``MIGRATE_RETRIES`` times, 5) before the run fails with a clear message. The
requests' wait is bounded by the lock_timeout, well under their 5 s statement_timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from widgetsvc.db import MIGRATIONS_DIR, SQL_DIR
from widgetsvc.ops import cmdline
from widgetsvc.ops.settings import ToolSettings

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
RETRY_DELAY = 2.0  # seconds between attempts


class MigrationError(RuntimeError):
    """psql could not apply a migration (its output is in the message)."""


def psql_binary() -> str:
    from widgetsvc.ops.localdb import find_bindir

    bindir = find_bindir()
    if bindir and (bindir / "psql").exists():
        return str(bindir / "psql")
    found = shutil.which("psql")
    if not found:
        raise MigrationError("psql was not found: install the PostgreSQL client "
                             "(apt-get install postgresql-client)")
    return found


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    files = sorted(p for p in directory.glob("*.sql"))
    for path in files:
        if not _MIGRATION_NAME.match(path.name):
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
    return files


def _psql(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    # The password travels in the environment, not on the command line (where `ps` shows it).
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise MigrationError(f"DATABASE_URL is not a valid connection string: {exc}") from None
    password = params.pop("password", None)
    env = {**os.environ, **({"PGPASSWORD": str(password)} if password else {})}
    return subprocess.run(
        [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", make_conninfo(**params),
         *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        env=env,
    )


def applied_versions(url: str) -> set[str]:
    # One transaction, under the advisory lock sql/migrate.psql takes: two concurrent CREATE
    # TABLE IF NOT EXISTS on a fresh database would collide on pg_type's unique index.
    result = _psql(url, "-1", "-f", str(SQL_DIR / "schema_migrations.sql"))
    if result.returncode != 0:
        raise MigrationError(result.stderr.strip() or "could not create schema_migrations")
    result = _psql(url, "-At", "-f", str(SQL_DIR / "applied_migrations.sql"))
    if result.returncode != 0:
        raise MigrationError(result.stderr.strip())
    return {line for line in result.stdout.splitlines() if line}


def _lock_timed_out(stderr: str) -> bool:
    return "55P03" in stderr or "lock timeout" in stderr


def migrate(url: str, directory: Path = MIGRATIONS_DIR, log=print, *,
            lock_timeout: str | None = None, retries: int | None = None,
            retry_delay: float = RETRY_DELAY,
            sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Apply every pending migration; return the versions applied by this call. A file that
    cannot get its locks within ``lock_timeout`` is rolled back and tried ``retries`` more
    times (defaults: ``MIGRATE_LOCK_TIMEOUT``, ``MIGRATE_RETRIES``)."""
    if lock_timeout is None or retries is None:
        tools = ToolSettings.from_env()
        lock_timeout = lock_timeout or tools.migrate_lock_timeout
        retries = tools.migrate_retries if retries is None else retries
    done = applied_versions(url)
    applied: list[str] = []
    for path in migration_files(directory):
        version = path.stem
        if version in done:
            continue
        for attempt in range(retries + 1):
            result = _psql(
                url,
                "-v", f"file={path}",
                "-v", f"version={version}",
                "-v", f"lock_timeout={lock_timeout}",
                "-f", str(SQL_DIR / "migrate.psql"),
            )
            if result.returncode == 0 or not _lock_timed_out(result.stderr):
                break
            if attempt < retries:
                log(f"{path.name} waited {lock_timeout} (lock_timeout) for a lock another "
                    f"transaction holds; rolled back, retry {attempt + 1} of {retries} in "
                    f"{retry_delay:g} s")
                sleep(retry_delay)
        else:
            raise MigrationError(
                f"{path.name} gave up: {retries + 1} attempt(s) each waited {lock_timeout} "
                "(MIGRATE_LOCK_TIMEOUT) for a table lock a long transaction holds, nothing of "
                "it was applied. Find that transaction (pg_stat_activity, pg_locks) and end "
                "it, or run bin/migrate again when it is over.")
        if result.returncode != 0:
            raise MigrationError(f"{path.name} failed, nothing of it was applied:\n"
                                 f"{result.stderr.strip()}")
        if "already_applied" in result.stdout.splitlines():
            continue  # another migrator applied it while this one waited for the lock
        log(f"applied {path.name}")
        applied.append(version)
    return applied


def recorded_versions(url: str) -> dict[str, str]:
    """Applied version -> when (UTC), read in a read-only transaction: changes nothing, not
    even the bookkeeping table (``--status`` and ``--dry-run`` on a fresh database)."""
    result = _psql(url, "-At", "-F", "|", "-f", str(SQL_DIR / "migration_status.psql"))
    if result.returncode != 0:
        raise MigrationError(result.stderr.strip())
    return dict(line.split("|", 1) for line in result.stdout.splitlines() if "|" in line)


def main(argv: list[str] | None = None) -> int:

    parser = cmdline.Parser(
        "bin/migrate", "Apply the pending sql/migrations/NNNN_*.sql files with psql, in order, "
        "each in one transaction.",
        details="""
Each file and its row in schema_migrations are committed together: a failing file changes
nothing and stops the run; a second run applies nothing. Two migrators at once take turns.
The README's "Migrations" section shows the same psql commands to run by hand.""",
        environment=[
            ("DATABASE_URL", "the database (unset: the private cluster, started if needed; "
                             "see bin/localdb)"),
            ("PGOPTIONS", "libpq session options, e.g. '-c statement_timeout=0'"),
        ],
        exit_codes=[(0, "applied (or nothing to apply); --status / --dry-run answered"),
                    (1, "failed: one line says why (a failed file: psql's output follows)")])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="list what would be applied; change nothing")
    mode.add_argument("--status", action="store_true",
                      help="each migration file, applied (when) or pending; change nothing")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from widgetsvc.ops.localdb import LocalDBError

    return cmdline.run(lambda: _main(args.dry_run, args.status), (MigrationError, LocalDBError))


def _main(dry_run: bool, status: bool) -> int:
    from widgetsvc.ops import dbprobe, localdb

    tools = ToolSettings.from_env()  # refused before the database is touched
    if tools.database_url:
        dbprobe.check_url(tools.database_url)
    url = localdb.database_url(tools)
    dbprobe.probe(url)
    if not (dry_run or status):
        if not migrate(url, lock_timeout=tools.migrate_lock_timeout,
                       retries=tools.migrate_retries):
            print("migrate: nothing to apply")
        return 0
    done = recorded_versions(url)
    files = {path.stem: path for path in migration_files()}
    if status:
        for version in sorted(set(files) | set(done)):
            state = (f"applied {done[version]}" if version in done else "pending")
            note = "" if version in files else "  (no such file here: a newer checkout's?)"
            print(f"{state:<29} {version}{note}")
        return 0
    pending = [files[v] for v in sorted(files) if v not in done]
    for path in pending:
        print(f"would apply {path.name}")
    if not pending:
        print("migrate: nothing to apply")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
