"""The service's database on the leader: its role, the database, the role's session settings,
and the migrations (idempotent; ``up`` and ``upgrade`` run it)."""

from __future__ import annotations

import psycopg

from widgetsvc.config import Config
from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.ops.cluster.instance import instance_env
from widgetsvc.ops.cluster.part import Log
from widgetsvc.ops.cluster.state import APP_ROLE, DBNAME, SUPERUSER, ClusterState
from widgetsvc.ops.migrate import migrate


def bootstrap(state: ClusterState, log: Log) -> None:
    """Role and database (made once), the session settings db.py would pass as options,
    then every pending migration through HAProxy."""
    queries = load_queries(SQL_DIR / "cluster")
    # The service's own setting, as the instances parse it.
    timeout = Config.from_env(instance_env(state, 0)).statement_timeout_ms
    with psycopg.connect(state.leader_url(SUPERUSER, "postgres"), autocommit=True) as conn:
        for name, params in (
            ("role_ddl", {"role": APP_ROLE, "password": state.secrets["app"]}),
            ("database_ddl", {"dbname": DBNAME, "role": APP_ROLE}),
            ("role_settings_ddl", {"role": APP_ROLE, "dbname": DBNAME,
                                   "statement_timeout": str(timeout)}),
        ):
            for (ddl,) in conn.execute(queries[name], params).fetchall():
                conn.execute(ddl)
    migrate(state.leader_url(), log=lambda msg: log(f"migrate: {msg}"))
