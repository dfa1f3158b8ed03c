"""The benchmarks' database: a fresh database in a private cluster, migrated, with one user
and N widgets (INSERT ... generate_series in chunks, then VACUUM ANALYZE)."""

from __future__ import annotations

import sys
import time
import uuid

from widgetsvc.auth import sessions
from widgetsvc.auth.accounts import Accounts, NewUser
from widgetsvc.auth.keys import refresh_keys_from_secrets
from widgetsvc.db import SQL_DIR, Database, load_queries
from widgetsvc.ops.localdb import PrivatePostgres
from widgetsvc.ops.migrate import migrate

CHUNK = 100_000  # widgets per statement: a progress line each, for large seeds
# The seeding connections run without the service's statement_timeout (0: none): a chunk takes
# seconds on a busy machine, and VACUUM ANALYZE of ten million widgets minutes.


def seeded_database(cluster: PrivatePostgres, *, widgets: int, email: str, password: str,
                    bcrypt_rounds: int, admin: bool,
                    dbname: str = "bench") -> tuple[str, NewUser]:
    """(database URL, the user) in a started ``cluster``."""
    url = cluster.create_database(dbname)
    migrate(url, log=lambda _m: None)
    db = Database(url, min_size=1, max_size=1, statement_timeout_ms=0)
    db.pool.open(wait=True, timeout=10)
    try:
        user = Accounts(db, bcrypt_rounds).create(email, password, admin=admin)
        if user is None:
            raise SystemExit(f"bench: {email} is already registered in the fresh database {dbname}")
        seed = load_queries(SQL_DIR / "bench")
        started = time.monotonic()
        with db.pool.connection() as conn:
            for first in range(1, widgets + 1, CHUNK):
                last = min(first + CHUNK - 1, widgets)
                conn.execute(seed["bench_seed_widgets"],
                             {"owner_id": user.id, "first": first, "last": last})
                if widgets >= CHUNK:
                    print(f"seeding: {last:,}/{widgets:,} widgets "
                          f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
            conn.execute(seed["bench_vacuum_analyze"])
        if widgets >= CHUNK:
            print(f"seeding: done, vacuumed ({time.monotonic() - started:.0f} s)",
                  file=sys.stderr, flush=True)
    finally:
        db.close()
    return url, user


def fresh_session(url: str, user_id: int) -> uuid.UUID:
    """The id of a new live session of the user (tokens signed for it name it in ``sid``)."""
    db = Database(url, min_size=1, max_size=1)
    db.pool.open(wait=True, timeout=10)
    try:
        with db.pool.connection() as conn:
            return conn.execute(load_queries(SQL_DIR / "bench")["bench_seed_sessions"],
                                {"user_id": user_id, "ids": [uuid.uuid4()],
                                 "hashes": [sessions.new_secret().hash]}).fetchone()["id"]
    finally:
        db.close()


def fresh_refresh_tokens(url: str, user_id: int, count: int, secret_key: str) -> list[str]:
    """``count`` new sessions of the user: their generation-0 refresh tokens, MAC'd as the
    service with ``secret_key`` does (only the hashes of their random parts are stored)."""
    keys = refresh_keys_from_secrets(secret_key)
    made = [sessions.new_session(keys) for _ in range(count)]
    db = Database(url, min_size=1, max_size=1)
    db.pool.open(wait=True, timeout=10)
    try:
        with db.pool.connection() as conn:
            conn.execute(load_queries(SQL_DIR / "bench")["bench_seed_sessions"],
                         {"user_id": user_id, "ids": [s.id for s in made],
                          "hashes": [s.refresh_hash for s in made]})
    finally:
        db.close()
    return [s.refresh_token for s in made]
def seed_existing(url: str, *, widgets: int, email: str, password: str,
                  bcrypt_rounds: int) -> None:
    """Seed a running service's (migrated) database once: the bench user and widget-1..N
    (``bin/bench --url``). A second run finds them and adds nothing."""
    db = Database(url, min_size=1, max_size=1, statement_timeout_ms=0)
    db.pool.open(wait=True, timeout=10)
    try:
        user = Accounts(db, bcrypt_rounds).create(email, password, admin=True)
        seed = load_queries(SQL_DIR / "bench")
        with db.pool.connection() as conn:
            if conn.execute(seed["bench_seeded_widgets"], {"count": widgets}).fetchone()["n"]:
                return
            if user is None:
                raise SystemExit(f"bench: {email} exists but widget-{widgets} does not: "
                                 "seed a fresh database, or pass the --widgets it was seeded with")
            conn.execute(seed["bench_seed_widgets"],
                         {"owner_id": user.id, "first": 1, "last": widgets})
            conn.execute(seed["bench_vacuum_analyze"])
    finally:
        db.close()
