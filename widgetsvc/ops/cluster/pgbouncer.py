"""PgBouncer: the instances' connections pooled per transaction in front of HAProxy, so that
a failover costs them one failed transaction, not their pool."""

from __future__ import annotations

from pathlib import Path

from widgetsvc.ops import plumbing
from widgetsvc.ops.cluster.packages import which
from widgetsvc.ops.cluster.part import Log, Part
from widgetsvc.ops.cluster.render import render
from widgetsvc.ops.cluster.state import APP_ROLE, DBNAME, HOST


class PgBouncer(Part):
    name = "pgbouncer"

    def ports(self) -> list[int]:
        return [self.state.ports["pgbouncer"]]
    label = "PgBouncer"
    ready_timeout = 30.0

    @property
    def config_path(self) -> Path:
        return self.state.root / "pgbouncer.ini"

    @property
    def log_path(self) -> Path:
        return self.state.root / "pgbouncer.log"  # its own log_file; stdout goes to .out

    def render(self) -> bool:
        root = self.state.root
        auth_file = root / "userlist.txt"
        self.state.config(auth_file, f'"{APP_ROLE}" "{self.state.secrets["app"]}"\n')
        pool = self.state.settings.pgbouncer_pool_size
        return self.state.config(self.config_path, render(
            "pgbouncer/pgbouncer.ini.template", dbname=DBNAME, upstream_host=HOST,
            upstream_port=self.state.ports["haproxy"], host=HOST,
            port=self.state.ports["pgbouncer"], auth_file=auth_file,
            log_file=root / "pgbouncer.log", pid_file=root / "pgbouncer.pid",
            pool_size=pool, max_db_connections=pool + 4))

    def argv(self) -> list[str]:
        return [which("pgbouncer"), str(self.config_path)]

    def start(self, log: Log) -> None:
        self.stop()
        log("cluster: starting PgBouncer")
        (self.state.root / "pgbouncer.pid").unlink(missing_ok=True)
        self.state.start_process(self.name, self.argv(), self.state.root / "pgbouncer.out")

    def ready(self) -> bool:
        return plumbing.tcp_open(self.state.ports["pgbouncer"])
