"""The one door to PostgreSQL: a psycopg 3 pool and the named queries in ``sql/queries``.

Every statement the service runs lives in a ``.sql`` file under ``sql/queries`` as a block that
starts with ``-- name: <query_name>``; values only ever travel as ``%(name)s`` parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
QUERIES_DIR = SQL_DIR / "queries"
MIGRATIONS_DIR = SQL_DIR / "migrations"

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load_queries(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """Read every ``-- name:`` block of every ``.sql`` file; a name may appear once."""
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        marks = list(_NAME_LINE.finditer(text))
        for mark, following in zip(marks, [*marks[1:], None], strict=True):
            end = following.start() if following else len(text)
            body = text[mark.end() : end].strip()
            name = mark.group(1)
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice ({path.name})")
            if not body:
                raise ValueError(f"query {name!r} in {path.name} is empty")
            queries[name] = body
    return queries


class Session:
    """Runs named queries on one connection (inside a transaction when one is open)."""

    def __init__(self, conn: psycopg.Connection, queries: dict[str, str]):
        self._conn = conn
        self._queries = queries

    def _run(self, query: str, params: dict[str, Any]) -> psycopg.Cursor:
        return self._conn.execute(self._queries[query], params)

    def one(self, query: str, /, **params: Any) -> dict[str, Any] | None:
        return self._run(query, params).fetchone()

    def all(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        return self._run(query, params).fetchall()

    def execute(self, query: str, /, **params: Any) -> int:
        return self._run(query, params).rowcount


class Database:
    """A connection pool plus the named queries; one per process (per gunicorn worker)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 4,
        timeout: float = 3.0,
        statement_timeout_ms: int = 5000,
        queries: dict[str, str] | None = None,
    ):
        self.queries = load_queries() if queries is None else queries
        options = f"-c statement_timeout={int(statement_timeout_ms)}"
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            # A broken connection (server restarted) is replaced, not handed out.
            check=ConnectionPool.check_connection,
            reconnect_timeout=30,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": max(1, int(timeout)),
                "options": options,
                "application_name": "widgetsvc",
            },
            name="widgetsvc",
        )

    def open(self) -> None:
        # wait=False: the service starts even while PostgreSQL is down and answers 503.
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One pooled connection in autocommit mode: each statement commits by itself."""
        with self.pool.connection() as conn:
            yield Session(conn, self.queries)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One pooled connection inside one transaction: all or nothing."""
        with self.pool.connection() as conn, conn.transaction():
            yield Session(conn, self.queries)

    def ping(self, timeout: float) -> None:
        """One trivial query, waiting at most ``timeout`` seconds for a connection."""
        with self.pool.connection(timeout=timeout) as conn:
            conn.execute(self.queries["health_check"])

    def one(self, query: str, /, **params: Any) -> dict[str, Any] | None:
        with self.session() as s:
            return s.one(query, **params)

    def all(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        with self.session() as s:
            return s.all(query, **params)

    def execute(self, query: str, /, **params: Any) -> int:
        with self.session() as s:
            return s.execute(query, **params)
