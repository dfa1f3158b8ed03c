"""The one door to PostgreSQL: a psycopg 3 pool and the named queries in ``sql/queries``.

Every statement the service runs lives in a ``.sql`` file under ``sql/queries`` as a block that
starts with ``-- name: <query_name>``; values only ever travel as ``%(name)s`` parameters.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool


def _sql_dir() -> Path:
    """The SQL folder: ``widgetsvc/sql`` in an installed package (setup.py ships the repository's
    ``sql/`` there), else the checkout's top-level ``sql/``."""
    package = Path(__file__).resolve().parent
    installed = package / "sql"
    return installed if installed.is_dir() else package.parent / "sql"


SQL_DIR = _sql_dir()
QUERIES_DIR = SQL_DIR / "queries"
MIGRATIONS_DIR = SQL_DIR / "migrations"

# How long the pool keeps retrying one lost connection in the background. psycopg_pool backs
# off exponentially (1, 2, 4, 8, 16 s ...) until this many seconds, so with its default of 300 s
# (or even 30 s) a worker could keep answering 503 for many seconds after PostgreSQL was
# back. Past it, the pool gives that attempt up and the next request opens a
# connection at once, so the service recovers within about two seconds of the database.
RECONNECT_TIMEOUT = 5.0

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load_queries(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """Read every ``-- name:`` block of every ``.sql`` file; a name may appear once."""
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        marks = list(_NAME_LINE.finditer(text))
        preamble = text[: marks[0].start()] if marks else text
        if any(line.strip() and not line.strip().startswith("--")
               for line in preamble.splitlines()):
            raise ValueError(f"{path.name}: SQL outside a '-- name:' block")
        ends = [mark.start() for mark in marks[1:]] + [len(text)] if marks else []
        for mark, end in zip(marks, ends, strict=True):
            body = text[mark.end() : end].strip()
            name = mark.group(1)
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice ({path.name})")
            if not body:
                raise ValueError(f"query {name!r} in {path.name} is empty")
            queries[name] = body
    return queries


class Session:
    """Runs named queries on one autocommit connection: each statement commits by itself."""

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
        check_after_idle: float = 1.0,
        pgbouncer: bool = False,
    ):
        self.queries = load_queries() if queries is None else queries
        self.check_after_idle = check_after_idle
        self._returned_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # UTC sessions: timestamps arrive as UTC datetimes, as the API shows them. Every query
        # is a short index lookup: JIT compilation only ever costs time, and re-planning each
        # prepared statement on every call (PostgreSQL's default for the first executions and
        # whenever it misjudges a LIMIT parameter) costs more than the queries themselves.
        options = " ".join([
            f"-c statement_timeout={int(statement_timeout_ms)}",
            "-c TimeZone=UTC",
            "-c jit=off",
            "-c plan_cache_mode=force_generic_plan",
        ])
        # Through PgBouncer in transaction mode (DB_PGBOUNCER=1) a connection may land on another
        # server connection for each transaction: no server-side prepared statements, and no
        # "options" (PgBouncer refuses them); the same settings are then the database role's
        # own (ALTER ROLE ... SET, done by bin/cluster).
        session = {"prepare_threshold": None} if pgbouncer else {"options": options}
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            # A connection that sat idle is checked before use and replaced if the server
            # went away meanwhile; see _check_if_idle for why not every time.
            check=self._check_if_idle,
            reconnect_timeout=RECONNECT_TIMEOUT,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": max(1, int(timeout)),
                # Over TCP, a server that stops answering (rather than refusing) is given up
                # after 5 s instead of the kernel's minutes; ignored on Unix sockets.
                "tcp_user_timeout": 5000,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                **session,
                "application_name": "widgetsvc",
            },
            name="widgetsvc",
        )

    def _check_if_idle(self, conn: psycopg.Connection) -> None:
        """Check a connection (one extra round trip) only when it has been idle for a while.

        A connection returned moments ago by a request that used it is known to work, and
        checking it again would double the round trips of a busy service. One that sat idle may
        have lost its server (restart, outage): the check finds out and the pool replaces it.
        A connection that breaks between two busy requests fails its next query; that request
        answers 503 and the pool discards the broken connection when it is returned.
        """
        returned = self._returned_at.get(conn)
        if returned is None or time.monotonic() - returned > self.check_after_idle:
            ConnectionPool.check_connection(conn)

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
            self._returned_at[conn] = time.monotonic()  # it just worked

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One pooled connection and one transaction around its statements (committed when
        the block ends, rolled back when it raises)."""
        with self.pool.connection() as conn:
            with conn.transaction():
                yield Session(conn, self.queries)
            self._returned_at[conn] = time.monotonic()

    def ping(self, timeout: float) -> None:
        """One trivial query, waiting at most ``timeout`` seconds for a connection."""
        with self.pool.connection(timeout=timeout) as conn:
            conn.execute(self.queries["health_check"])
            self._returned_at[conn] = time.monotonic()

    def one(self, query: str, /, **params: Any) -> dict[str, Any] | None:
        with self.session() as s:
            return s.one(query, **params)

    def all(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        with self.session() as s:
            return s.all(query, **params)

    def execute(self, query: str, /, **params: Any) -> int:
        with self.session() as s:
            return s.execute(query, **params)
