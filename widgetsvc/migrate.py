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
        raise MigrationError("psql was not found; install the PostgreSQL client")
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


def main(argv: list[str] | None = None) -> int:
    from widgetsvc.localdb import LocalDBError, database_url_from_env

    try:
        url = database_url_from_env()
        applied = migrate(url)
    except (MigrationError, LocalDBError) as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    if not applied:
        print("migrate: nothing to apply")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
