"""The service's database on the leader: its role, the database, the role's session settings,
and the migrations (idempotent; ``up`` and ``upgrade`` run it)."""

from __future__ import annotations

import os

import psycopg

from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.ops.cluster.part import Log
from widgetsvc.ops.cluster.state import APP_ROLE, DBNAME, SUPERUSER, ClusterState
from widgetsvc.ops.migrate import migrate


def bootstrap(state: ClusterState, log: Log) -> None:
    """Role and database (made once), the session settings db.py would pass as options,
    then every pending migration through HAProxy."""
    queries = load_queries(SQL_DIR / "cluster")
    timeout = os.environ.get("DB_STATEMENT_TIMEOUT_MS", "5000").strip() or "5000"
    with psycopg.connect(state.leader_url(SUPERUSER, "postgres"), autocommit=True) as conn:
        for name, params in (
            ("role_ddl", {"role": APP_ROLE, "password": state.secrets["app"]}),
            ("database_ddl", {"dbname": DBNAME, "role": APP_ROLE}),
            ("role_settings_ddl", {"role": APP_ROLE, "dbname": DBNAME,
                                   "statement_timeout": str(int(timeout))}),
        ):
            for (ddl,) in conn.execute(queries[name], params).fetchall():
                conn.execute(ddl)
    migrate(state.leader_url(), log=lambda msg: log(f"migrate: {msg}"))
