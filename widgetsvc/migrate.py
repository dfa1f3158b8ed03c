"""Apply ``sql/migrations/NNNN_*.sql`` in order with psql, each file in one transaction.

The same thing a DBA does by hand (see README): psql with ``ON_ERROR_STOP``, one transaction per
file, and a row in ``schema_migrations`` written in that same transaction. A file that fails
leaves the database as it was and stops the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from widgetsvc.db import MIGRATIONS_DIR, SQL_DIR

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """psql could not apply a migration (its output is in the message)."""


def psql_binary() -> str:
    from widgetsvc.localdb import find_bindir

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


def migrate(url: str, directory: Path = MIGRATIONS_DIR, log=print) -> list[str]:
    """Apply every pending migration; return the versions applied by this call."""
    done = applied_versions(url)
    applied: list[str] = []
    for path in migration_files(directory):
        version = path.stem
        if version in done:
            continue
        result = _psql(
            url,
            "-v", f"file={path}",
            "-v", f"version={version}",
            "-f", str(SQL_DIR / "migrate.psql"),
        )
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
    from widgetsvc import cmdline

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
    from widgetsvc.localdb import LocalDBError

    return cmdline.run(lambda: _main(args.dry_run, args.status), (MigrationError, LocalDBError))


def _main(dry_run: bool, status: bool) -> int:
    from widgetsvc import dbprobe
    from widgetsvc.localdb import check_settings, database_url_from_env

    check_settings()
    if os.environ.get("DATABASE_URL"):
        dbprobe.check_url(os.environ["DATABASE_URL"])
    url = database_url_from_env()
    dbprobe.probe(url)
    if not (dry_run or status):
        if not migrate(url):
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
