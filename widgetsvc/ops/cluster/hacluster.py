"""The high-availability cluster on this machine (``bin/cluster``): its parts in order.

Up: etcd -> Patroni x 2 (each runs its PostgreSQL) -> HAProxy -> role, database and
migrations -> PgBouncer -> instances -> nginx -> monitoring. Down is the reverse. Each part
(``part.Part``) renders its own configuration and knows how it starts, reloads and is ready;
this class only orders them and keeps ``state.json`` (``state.ClusterState``). Not to be
confused with ``localdb``'s private single PostgreSQL.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from widgetsvc.ops import localdb
from widgetsvc.ops.cluster import database, monitoring, ports
from widgetsvc.ops.cluster.etcd import Etcd
from widgetsvc.ops.cluster.haproxy import HAProxy
from widgetsvc.ops.cluster.instance import Instance, settings_digest
from widgetsvc.ops.cluster.nginx import Front
from widgetsvc.ops.cluster.packages import ensure_packages
from widgetsvc.ops.cluster.part import Log
from widgetsvc.ops.cluster.patroni import Patroni, wait_replicated
from widgetsvc.ops.cluster.pgbouncer import PgBouncer
from widgetsvc.ops.cluster.state import HOST, NODES, STATE_VERSION, ClusterState
from widgetsvc.ops.cluster.wal import WalArchive


@dataclass
class Options:
    instances: int = 2
    pgbouncer: bool = True


class HACluster(ClusterState):
    """The cluster kept in ``root``: its parts, ordered."""

    def __init__(self, root: Path | None = None):
        super().__init__(root)
        self.etcd = Etcd(self)
        self.patroni = [Patroni(self, index) for index in range(len(NODES))]
        self.haproxy = HAProxy(self)
        self.pgbouncer = PgBouncer(self)
        self.front = Front(self)

    def instances(self, count: int | None = None) -> list[Instance]:
        """The first ``count`` instances (default: as many as the cluster runs)."""
        wanted = self.state.get("instances", 0) if count is None else count
        return [Instance(self, index) for index in range(wanted)]

    # -- up -----------------------------------------------------------------------------------
    def _prepare(self, options: Options) -> None:
        if not self.exists:
            self.state = {"version": STATE_VERSION, "host": HOST, "ports": {}, "pids": {},
                          "secrets": {name: secrets.token_urlsafe(24) for name in
                                      ("superuser", "replication", "app")}}
            self.state["secrets"]["etcd_token"] = secrets.token_hex(8)
        # Credentials of Patroni's REST API and of etcd (a state from before they existed
        # gets them here too); state.json is root's, 0600.
        for name in ("patroni_rest", "etcd_root", "etcd_patroni"):
            self.secrets.setdefault(name, secrets.token_urlsafe(24))
        self.state["instances"] = options.instances
        self.state["pgbouncer"] = options.pgbouncer
        ports.assign(self, options.instances)
        # The secret the instances sign with: the caller's SECRET_KEY, else one kept here.
        secret = self.settings.secret_key or self.secrets.get("secret_key")
        self.secrets["secret_key"] = secret or secrets.token_urlsafe(48)
        self.save()

    def up(self, options: Options, log: Log = print) -> None:
        ensure_packages()
        self.bindir = localdb.ensure_bindir()
        self.private_dir(self.root)  # parents traversable by the owner; the root its own
        self._prepare(options)
        wal = WalArchive(self)
        wal.write_config()  # what every node's archive_command names
        self.etcd.up(log)
        for node in self.patroni:
            node.up(log, wait=False)
        wait_replicated(self, log)
        self.haproxy.up(log)
        database.bootstrap(self, log)
        wal.after_up(log)
        if self.state["pgbouncer"]:
            self.pgbouncer.up(log)
        else:
            self.pgbouncer.stop()
        self.start_instances(log)
        self.front.up(log)
        for part in monitoring.parts(self):
            part.up(log)
        log(f"cluster: up, front at {self.front_url}")

    def start_instances(self, log: Log) -> None:
        """Every instance not running; all of them again when their settings changed (the
        database, the secret ...), and none beyond the count."""
        digest = settings_digest(self)
        if self.state.get("instance_settings") != digest:
            for name in [n for n in self.pids if n.startswith("instance-")]:
                self.stop_process(name)
            self.state["instance_settings"] = digest
        for name in [n for n in self.pids if n.startswith("instance-")]:
            if int(name.split("-")[1]) > self.state["instances"]:
                self.stop_process(name)
        started = [part for part in self.instances() if part.up(log, wait=False)]
        for part in started:
            part.wait()

    # -- down ---------------------------------------------------------------------------------
    def down(self, purge: bool = False, log: Log = print) -> None:
        if self.exists:
            extra = sorted((n for n in self.pids if n.startswith("instance-")), reverse=True)
            order = [*reversed(monitoring.parts(self)), self.front,
                     *(Instance(self, int(n.split("-")[1]) - 1) for n in extra),
                     self.pgbouncer, self.haproxy, *reversed(self.patroni), self.etcd]
            for part in order:
                if part.name in self.pids:
                    log(f"cluster: stopping {part.name}")
                    part.stop()
            for node in self.patroni:
                node.stop_orphan_postmaster()
        if purge:
            log(f"cluster: deleting {self.root}")
            for node in NODES:
                if self.socket_dir(node) != self.node_dir(node) / "run":
                    shutil.rmtree(self.socket_dir(node), ignore_errors=True)
            shutil.rmtree(self.root, ignore_errors=True)
            self.state = {}

    # -- status -------------------------------------------------------------------------------
    def postmaster_pid(self, node: str) -> int | None:
        return self.patroni[NODES.index(node)].postmaster_pid()

    def status(self) -> dict[str, Any]:
        if not self.exists:
            return {"running": False, "dir": str(self.root)}
        members = {m["name"]: m for m in self.members()}
        postgres = []
        for index, node in enumerate(NODES):
            member = members.get(node, {})
            postgres.append({
                "name": node, "role": member.get("role"), "state": member.get("state"),
                "postmaster_pid": self.postmaster_pid(node),
                "port": self.ports["postgres"][index],
                "patroni_pid": self.pid(f"patroni-{node}"),
                "patroni_url": self.rest_url(index),
                "timeline": member.get("timeline"), "lag": member.get("lag"),
            })
        return {
            "running": self.alive("nginx"),
            "dir": str(self.root),
            "front": self.front_url,
            "instances": [{"pid": self.pid(part.name), "url": part.url}
                          for part in self.instances()],
            "postgres": postgres,
            "haproxy": {"pid": self.pid("haproxy"),
                        "url": f"postgresql://{HOST}:{self.ports['haproxy']}"},
            "pgbouncer": ({"pid": self.pid("pgbouncer"),
                           "url": f"postgresql://{HOST}:{self.ports['pgbouncer']}"}
                          if self.state.get("pgbouncer") else None),
            "etcd": {"pid": self.pid("etcd"),
                     "url": f"http://{HOST}:{self.ports['etcd_client']}"},
            "nginx": {"pid": self.pid("nginx")},
            "prometheus": monitoring.url(self),
        }

    def all_groups(self) -> list[int]:
        """Process groups of every part ever recorded (for checking nothing is left)."""
        return [int(record[0]) for record in self.pids.values()]
