"""Which migrations rewrite a table (issue 19, upgrades): the README names them, since such a
migration holds the table's ACCESS EXCLUSIVE lock for as long as the rewrite takes, and every
request for that table waits meanwhile. Found here, not claimed: each migration is applied alone
to a database with rows, and a table whose file (relfilenode) changed was rewritten."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from widgetsvc.db import MIGRATIONS_DIR, SQL_DIR, load_queries
from widgetsvc.ops.localdb import REPO_ROOT
from widgetsvc.ops.migrate import migrate, migration_files

QUERIES = load_queries(SQL_DIR / "testing")
# migration -> the existing tables it rewrites. A new migration that rewrites one goes here AND
# in the README's list ("Migrations"), with how long it locks the table.
REWRITES = {"0007_widget_etag": ["widgets"]}


@pytest.fixture
def fresh_url(pg_cluster):
    """A brand-new, empty database, dropped afterwards."""
    name = f"rew_{uuid.uuid4().hex[:12]}"
    yield pg_cluster.create_database(name)
    pg_cluster.drop_database(name)


def table_files(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return {r["name"]: r["file"] for r in conn.execute(QUERIES["upgrade_table_files"])}


def test_only_the_migrations_the_readme_names_rewrite_a_table(fresh_url, tmp_path):
    found: dict[str, list[str]] = {}
    applied = tmp_path / "applied"
    applied.mkdir()
    for path in migration_files():
        before = table_files(fresh_url)
        (applied / path.name).write_text(path.read_text())
        assert migrate(fresh_url, applied, log=lambda _m: None) == [path.stem]
        after = table_files(fresh_url)
        rewritten = sorted(t for t in before if t in after and after[t] != before[t])
        if rewritten:
            found[path.stem] = rewritten
        if path.stem == "0002_widgets":
            with psycopg.connect(fresh_url, autocommit=True) as conn:
                conn.execute(QUERIES["upgrade_seed_rows"],
                             {"email": "seed@example.com", "name": "seed"})
    assert found == REWRITES
    readme = (REPO_ROOT / "README.md").read_text()
    (listed,) = re.findall(r"Migrations that rewrite \(and so\s+lock\) a whole table: (.*?)\.\n",
                           readme, re.S)
    assert sorted(re.findall(r"\*\*`(\d{4}_\w+)`\*\*", listed)) == sorted(REWRITES), listed
    assert {p.stem for p in MIGRATIONS_DIR.glob("*.sql")} >= set(REWRITES)
