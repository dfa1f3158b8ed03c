"""bin/migrate and widgetsvc.ops.migrate against fresh databases in the session's test cluster."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.rows import dict_row

from widgetsvc.db import MIGRATIONS_DIR, SQL_DIR, load_queries
from widgetsvc.ops.localdb import REPO_ROOT
from widgetsvc.ops.migrate import MigrationError, migrate, migration_files

CATALOG = load_queries(SQL_DIR / "testing")
REAL_VERSIONS = [p.stem for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]
EXPECTED_TABLES = {"schema_migrations", "users", "revoked_tokens", "widgets", "widget_blocks",
                   "sessions", "spent_refresh_tokens"}
EXPECTED_INDEXES = {
    "users_pkey": "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)",
    "users_public_id_key":
        "CREATE UNIQUE INDEX users_public_id_key ON public.users USING btree (public_id)",
    "users_email_lower_key":
        "CREATE UNIQUE INDEX users_email_lower_key ON public.users USING btree (lower(email))",
    "revoked_tokens_pkey":
        "CREATE UNIQUE INDEX revoked_tokens_pkey ON public.revoked_tokens USING btree (jti)",
    "revoked_tokens_expires_at_idx":
        "CREATE INDEX revoked_tokens_expires_at_idx ON public.revoked_tokens "
        "USING btree (expires_at)",
    "widgets_pkey": "CREATE UNIQUE INDEX widgets_pkey ON public.widgets USING btree (id)",
    "widgets_name_key":
        "CREATE UNIQUE INDEX widgets_name_key ON public.widgets USING btree (name)",
    "widgets_owner_name_idx":
        "CREATE INDEX widgets_owner_name_idx ON public.widgets USING btree (owner_id, name)",
    "widgets_deadline_name_idx":
        "CREATE INDEX widgets_deadline_name_idx ON public.widgets USING btree (deadline, name)",
    "widgets_created_at_name_idx":
        "CREATE INDEX widgets_created_at_name_idx ON public.widgets "
        "USING btree (created_at, name)",
    "users_registered_on_idx":
        "CREATE INDEX users_registered_on_idx ON public.users USING btree (registered_on, id)",
    "sessions_pkey": "CREATE UNIQUE INDEX sessions_pkey ON public.sessions USING btree (id)",
    "sessions_refresh_hash_key":
        "CREATE UNIQUE INDEX sessions_refresh_hash_key ON public.sessions "
        "USING btree (refresh_hash)",
    "sessions_user_id_idx":
        "CREATE INDEX sessions_user_id_idx ON public.sessions USING btree (user_id)",
    "sessions_expires_at_idx":
        "CREATE INDEX sessions_expires_at_idx ON public.sessions USING btree (expires_at)",
    "spent_refresh_tokens_pkey":
        "CREATE UNIQUE INDEX spent_refresh_tokens_pkey ON public.spent_refresh_tokens "
        "USING btree (hash)",
    "spent_refresh_tokens_expires_at_idx":
        "CREATE INDEX spent_refresh_tokens_expires_at_idx ON public.spent_refresh_tokens "
        "USING btree (expires_at)",
    "users_enabled_admins_idx":
        "CREATE INDEX users_enabled_admins_idx ON public.users USING btree (id) "
        "WHERE (admin AND (NOT disabled))",
    "schema_migrations_pkey":
        "CREATE UNIQUE INDEX schema_migrations_pkey ON public.schema_migrations "
        "USING btree (version)",
}


def catalog(url: str, query: str, /, **params) -> list[dict]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cursor = conn.execute(CATALOG[query], params)
        return cursor.fetchall() if cursor.description else []


def applied(url: str) -> list[str]:
    return [row["version"] for row in catalog(url, "catalog_applied_versions")]


def table_exists(url: str, name: str) -> bool:
    return catalog(url, "catalog_table_exists", name=name)[0]["present"]


@pytest.fixture
def fresh_db(pg_cluster):
    """A brand-new, empty database: (name, url). Dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    yield name, url
    pg_cluster.drop_database(name)


@pytest.fixture
def fresh_url(fresh_db) -> str:
    return fresh_db[1]


def test_real_migrations_are_what_this_suite_expects():
    assert REAL_VERSIONS[:2] == ["0001_users", "0002_widgets"]
    assert [p.stem for p in migration_files()] == REAL_VERSIONS


def test_fresh_database_gets_every_migration_in_order(fresh_url):
    assert not table_exists(fresh_url, "schema_migrations")
    messages: list[str] = []

    result = migrate(fresh_url, log=messages.append)

    assert result == REAL_VERSIONS
    assert messages == [f"applied {version}.sql" for version in REAL_VERSIONS]
    assert applied(fresh_url) == REAL_VERSIONS
    tables = {row["name"] for row in catalog(fresh_url, "catalog_public_tables")}
    assert EXPECTED_TABLES <= tables
    indexes = {row["name"]: row["definition"]
               for row in catalog(fresh_url, "catalog_public_indexes")}
    for name, definition in EXPECTED_INDEXES.items():
        assert indexes.get(name) == definition
    assert catalog(fresh_url, "catalog_foreign_keys", table="widgets") == [{
        "name": "widgets_owner_id_fkey",
        "definition": "FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE CASCADE",
    }]


def test_second_run_applies_nothing(fresh_url):
    migrate(fresh_url, log=lambda _m: None)
    before = catalog(fresh_url, "catalog_public_tables")
    messages: list[str] = []

    assert migrate(fresh_url, log=messages.append) == []

    assert messages == []
    assert applied(fresh_url) == REAL_VERSIONS
    assert catalog(fresh_url, "catalog_public_tables") == before


def _copy_real_migrations(directory):
    directory.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, directory / path.name)
    return directory


BROKEN = """\
CREATE TABLE half_done (id int PRIMARY KEY);
INSERT INTO half_done VALUES (1);
SELECT 1 / 0;
"""


def test_failing_file_changes_nothing_and_stops_the_run(fresh_url, tmp_path):
    directory = _copy_real_migrations(tmp_path / "migrations")
    (directory / "0099_broken.sql").write_text(BROKEN)
    (directory / "0100_after.sql").write_text("CREATE TABLE after_broken (id int);\n")
    messages: list[str] = []

    with pytest.raises(MigrationError) as caught:
        migrate(fresh_url, directory, log=messages.append)

    text = str(caught.value)
    assert text.startswith("0099_broken.sql failed, nothing of it was applied:\n")
    assert "division by zero" in text
    assert not table_exists(fresh_url, "half_done")
    assert not table_exists(fresh_url, "after_broken")  # the run stopped at the failure
    assert applied(fresh_url) == REAL_VERSIONS  # the earlier files are applied and recorded
    assert messages == [f"applied {version}.sql" for version in REAL_VERSIONS]

    # Fixed, the next run applies exactly the remaining files.
    (directory / "0099_broken.sql").write_text("CREATE TABLE half_done (id int PRIMARY KEY);\n")
    assert migrate(fresh_url, directory, log=lambda _m: None) == ["0099_broken", "0100_after"]
    assert table_exists(fresh_url, "half_done")
    assert applied(fresh_url) == [*REAL_VERSIONS, "0099_broken", "0100_after"]


def test_failing_file_on_an_up_to_date_database(fresh_url, tmp_path):
    migrate(fresh_url, log=lambda _m: None)
    directory = _copy_real_migrations(tmp_path / "migrations")
    (directory / "0099_broken.sql").write_text(BROKEN)

    with pytest.raises(MigrationError, match=r"^0099_broken\.sql failed"):
        migrate(fresh_url, directory, log=lambda _m: None)

    assert not table_exists(fresh_url, "half_done")
    assert applied(fresh_url) == REAL_VERSIONS


def test_badly_named_file_is_refused_before_anything_runs(fresh_url, tmp_path):
    directory = _copy_real_migrations(tmp_path / "migrations")
    (directory / "0003-Widgets Extra.sql").write_text("CREATE TABLE nope (id int);\n")

    with pytest.raises(MigrationError) as caught:
        migrate(fresh_url, directory, log=lambda _m: None)

    assert str(caught.value) == (
        "0003-Widgets Extra.sql: migration files are named NNNN_description.sql"
    )
    assert applied(fresh_url) == []


def test_email_index_is_case_insensitive_in_the_database(fresh_url):
    migrate(fresh_url, log=lambda _m: None)
    catalog(fresh_url, "catalog_insert_user_strict", email="A@x.com")

    with pytest.raises(psycopg.errors.UniqueViolation, match="users_email_lower_key"):
        catalog(fresh_url, "catalog_insert_user_strict", email="a@x.com")


def test_two_migrators_at_once_take_turns(pg_cluster):
    """Two services starting together on a fresh database: no error, each file applied once."""
    for attempt in range(4):  # the race is timing-dependent: try a few fresh databases
        name = f"race_{attempt}_{uuid.uuid4().hex[:8]}"
        url = pg_cluster.create_database(name)
        try:
            with ThreadPoolExecutor(2) as pool:
                runs = [pool.submit(migrate, url, log=lambda _m: None) for _ in range(2)]
                results = [run.result(timeout=60) for run in runs]
            assert sorted(results[0] + results[1]) == REAL_VERSIONS  # each reported once
            assert applied(url) == REAL_VERSIONS
            assert EXPECTED_TABLES <= {r["name"] for r in catalog(url, "catalog_public_tables")}
        finally:
            pg_cluster.drop_database(name)


# -- bin/migrate as a subprocess ------------------------------------------------------------

def run_bin_migrate(database_url: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, **settings}
    return subprocess.run(
        [str(REPO_ROOT / "bin" / "migrate")], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120, check=False,
    )


def test_bin_migrate_applies_then_has_nothing_to_apply(fresh_url):
    first = run_bin_migrate(fresh_url)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == "".join(f"applied {v}.sql\n" for v in REAL_VERSIONS)
    assert applied(fresh_url) == REAL_VERSIONS

    second = run_bin_migrate(fresh_url)
    assert (second.returncode, second.stdout, second.stderr) == (
        0, "migrate: nothing to apply\n", "",
    )


def test_bin_migrate_missing_database_fails_with_a_message(pg_cluster):
    result = run_bin_migrate(pg_cluster.url("no_such_database_here"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("widgetsvc: DATABASE_URL=")
    assert len(result.stderr.splitlines()) == 1
    assert 'database "no_such_database_here" does not exist' in result.stderr


def test_bin_migrate_unreachable_server_fails_with_a_message(tmp_path):
    url = f"postgresql://widgetsvc@/widgetsvc?host={tmp_path}&port=1"
    result = run_bin_migrate(url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"widgetsvc: DATABASE_URL={url}: cannot connect to Unix socket {tmp_path}/.s.PGSQL.1: "
        "No such file or directory (a libpq URL of a reachable PostgreSQL, e.g. "
        "postgresql://user@host:5432/dbname)\n")


def test_psql_gets_the_password_through_the_environment_not_its_arguments(monkeypatch):
    """`ps` shows every process's arguments to every local user."""
    import widgetsvc.ops.migrate as migrate_module

    seen = {}

    def fake_run(argv, **kwargs):
        seen["argv"], seen["env"] = argv, kwargs["env"]
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(migrate_module.subprocess, "run", fake_run)
    migrate_module._psql("postgresql://app:s3cret@db.example.com/prod", "-f", "x.sql")
    assert not any("s3cret" in arg for arg in seen["argv"])
    assert seen["env"]["PGPASSWORD"] == "s3cret"
    assert "host=db.example.com" in " ".join(seen["argv"])


# -- a migration behind a long transaction (issue 18): lock_timeout and retries ---------------

BEFORE_ETAG = [v for v in REAL_VERSIONS if v < "0007"]


@pytest.fixture
def before_etag(fresh_url, tmp_path) -> str:
    """A database at 0006: 0007 (which rewrites widgets) is the one pending migration."""
    older = tmp_path / "older"
    older.mkdir()
    for version in BEFORE_ETAG:
        (older / f"{version}.sql").write_text((MIGRATIONS_DIR / f"{version}.sql").read_text())
    migrate(fresh_url, older, log=lambda _m: None)
    assert applied(fresh_url) == BEFORE_ETAG
    return fresh_url


def hold_widgets(url: str) -> psycopg.Connection:
    """An open transaction that has read widgets: what a long report or a stuck client is."""
    conn = psycopg.connect(url)
    conn.execute(CATALOG["migration_locks_hold_widgets"])
    return conn


def widget_columns(url: str) -> list[str]:
    return [row["column_name"] for row in catalog(url, "migration_locks_widgets_columns")]


def test_a_migration_behind_a_long_transaction_gives_up_with_a_clear_message(before_etag):
    holder = hold_widgets(before_etag)
    try:
        result = run_bin_migrate(before_etag, MIGRATE_LOCK_TIMEOUT="300ms", MIGRATE_RETRIES="1")
        assert result.returncode == 1, result
        assert result.stderr.startswith("widgetsvc: 0007_widget_etag.sql gave up: 2 attempt(s) "
                                        "each waited 300ms (MIGRATE_LOCK_TIMEOUT)"), result
        assert "retry 1 of 1" in result.stdout
        assert applied(before_etag) == BEFORE_ETAG  # nothing of it was applied
        assert "etag" not in widget_columns(before_etag)
    finally:
        holder.close()


def test_a_migration_succeeds_on_retry_once_the_lock_is_released(before_etag):
    holder = hold_widgets(before_etag)
    env = {**os.environ, "DATABASE_URL": before_etag, "MIGRATE_LOCK_TIMEOUT": "300ms",
           "MIGRATE_RETRIES": "30"}
    proc = subprocess.Popen([str(REPO_ROOT / "bin" / "migrate")], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        # The first attempt gives up after lock_timeout (generous bound: a busy machine).
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "bin/migrate never gave up waiting for the lock"
        first = proc.stdout.readline()
        assert "0007_widget_etag.sql waited 300ms (lock_timeout)" in first, first
        holder.rollback()  # the long transaction ends
        out, err = proc.communicate(timeout=120)
    finally:
        holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, err) == (0, ""), (out, err)
    assert "applied 0007_widget_etag.sql" in out.splitlines()
    assert applied(before_etag) == REAL_VERSIONS
    assert "etag" in widget_columns(before_etag)


def test_bad_lock_settings_are_refused_before_anything_runs(fresh_url):
    for name, value in (("MIGRATE_LOCK_TIMEOUT", "5 s; DROP TABLE users"),
                        ("MIGRATE_LOCK_TIMEOUT", "0"), ("MIGRATE_RETRIES", "-1")):
        result = run_bin_migrate(fresh_url, **{name: value})
        assert result.returncode == 1
        assert result.stderr.startswith(f"widgetsvc: {name}=")
    assert not table_exists(fresh_url, "schema_migrations")
