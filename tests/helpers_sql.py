"""Run the test-only named queries of ``sql/testing/*.sql`` (no SQL strings in Python)."""

from __future__ import annotations

from typing import Any

from widgetsvc.db import SQL_DIR, Database, load_queries

TESTING_QUERIES = load_queries(SQL_DIR / "testing")


def run_sql(db: Database, name: str, **params: Any) -> list[dict[str, Any]] | int:
    """The rows of a query that returns rows, else the number of rows it changed."""
    with db.pool.connection() as conn:
        cur = conn.execute(TESTING_QUERIES[name], params)
        return cur.fetchall() if cur.description else cur.rowcount
