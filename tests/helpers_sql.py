"""Run the test-only named queries of ``sql/testing/*.sql`` (no SQL strings in Python)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from widgetsvc.db import SQL_DIR, Database, load_queries

TESTING_QUERIES = load_queries(SQL_DIR / "testing")


def run_sql(db: Database, name: str, **params: Any) -> list[dict[str, Any]] | int:
    """The rows of a query that returns rows, else the number of rows it changed."""
    with db.pool.connection() as conn:
        cur = conn.execute(TESTING_QUERIES[name], params)
        return cur.fetchall() if cur.description else cur.rowcount


def legacy_session(db: Database, email: str) -> tuple[str, str]:
    """A session of the user as stored before refresh generations (migration 0009), and its
    43-character refresh token: (session id, token)."""
    session_id, token = str(uuid.uuid4()), secrets.token_urlsafe(32)
    run_sql(db, "sess_insert_legacy", email=email, session_id=session_id,
            token_hash=hashlib.sha256(token.encode()).digest())
    return session_id, token


def wait_for_lock_waiters(db: Database, count: int, timeout: float = 30.0) -> bool:
    """Poll until ``count`` other backends wait for a lock; False after ``timeout`` seconds
    (generous: only a regression, or a fixed bug's different order, takes that long)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run_sql(db, "sess_lock_waiters")[0]["waiting"] >= count:
            return True
        time.sleep(0.01)
    return False


@contextmanager
def held(db: Database, name: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
    """Run a test-only query in a transaction that stays open (its locks held) for the block,
    and commits when the block ends."""
    with db.pool.connection() as conn, conn.transaction():
        yield conn.execute(TESTING_QUERIES[name], params).fetchall()
