"""The benchmarks' database: a fresh database in a private cluster, migrated, with one user
and N widgets (one INSERT ... generate_series, then VACUUM ANALYZE)."""

from __future__ import annotations

from typing import Any

from widgetsvc.auth.sessions import new_refresh_token
from widgetsvc.auth.users import Users
from widgetsvc.db import SQL_DIR, Database, load_queries
from widgetsvc.localdb import LocalCluster
from widgetsvc.migrate import migrate


def seeded_database(cluster: LocalCluster, *, widgets: int, email: str, password: str,
                    bcrypt_rounds: int, admin: bool) -> tuple[str, dict[str, Any]]:
    """(database URL, the user) in a started ``cluster``."""
    url = cluster.create_database("bench")
    migrate(url, log=lambda _m: None)
    db = Database(url, min_size=1, max_size=1)
    db.pool.open(wait=True, timeout=10)
    try:
        user = Users(db, bcrypt_rounds).create(email, password, admin=admin)
        seed = load_queries(SQL_DIR / "bench")
        with db.pool.connection() as conn:
            conn.execute(seed["bench_seed_widgets"], {"owner_id": user["id"], "count": widgets})
            conn.execute(seed["bench_vacuum_analyze"])
    finally:
        db.close()
    return url, user


def fresh_refresh_tokens(url: str, user_id: int, count: int) -> list[str]:
    """``count`` new sessions of the user: their refresh tokens (only the hashes are stored)."""
    made = [new_refresh_token() for _ in range(count)]
    db = Database(url, min_size=1, max_size=1)
    db.pool.open(wait=True, timeout=10)
    try:
        with db.pool.connection() as conn:
            conn.execute(load_queries(SQL_DIR / "bench")["bench_seed_sessions"],
                         {"user_id": user_id, "hashes": [digest for _, digest in made]})
    finally:
        db.close()
    return [token for token, _ in made]
