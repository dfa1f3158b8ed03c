"""What every part of the cluster shares: its directory, ``state.json`` (ports, secrets, pids),
the addresses the parts reach each other at, and starting or stopping one recorded process.

Every part runs in its own session under an unprivileged OS user (the service's instances run
as the caller, like ``bin/serve``), on loopback ports picked once and kept in ``state.json``.
"""

from __future__ import annotations

import base64
import json
import pwd
from functools import cached_property
from pathlib import Path
from typing import Any

from widgetsvc.ops import localdb, plumbing, safefs
from widgetsvc.ops.cluster.loopback import http_json
from widgetsvc.ops.cluster.render import write
from widgetsvc.ops.localdb import reachable_dir
from widgetsvc.ops.settings import ToolSettings

HOST = "127.0.0.1"
SCOPE = "widgetsvc"
DBNAME = "widgetsvc"
APP_ROLE = "widgetsvc"
SUPERUSER = "postgres"
PATRONI_USER = "patroni"  # Patroni's REST API (basic auth) and its etcd user
ETCD_PREFIX = "/service/"  # Patroni's namespace in etcd: all its etcd user may touch
NODES = ("pg1", "pg2")
STATE_VERSION = 1


class ClusterError(RuntimeError):
    """The cluster could not be brought up (the message carries the failing part's log)."""


def default_dir() -> Path:
    wanted = ToolSettings.from_env().cluster_dir
    return reachable_dir(wanted or localdb.VAR_DIR / "cluster")


class ClusterState:
    """The cluster kept in ``root``; ``state.json`` there records ports, secrets and pids."""

    bindir: Path  # PostgreSQL's programs: set by ``up`` and ``restore`` (localdb finds them)

    def __init__(self, root: Path | None = None):
        self.root = reachable_dir(Path(root).resolve()) if root else default_dir()
        self.state_path = self.root / "state.json"
        self.state: dict[str, Any] = self._load()

    @cached_property
    def settings(self) -> ToolSettings:
        """The tools' settings, parsed once (``bin/cluster`` refused bad ones already)."""
        return ToolSettings.from_env()

    @cached_property
    def owner(self) -> pwd.struct_passwd:
        """The unprivileged user the parts run as (localdb decides, as for its own)."""
        return localdb.cluster_owner()

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(safefs.read_text(self.state_path) or "")
        except (OSError, ValueError):
            return {}

    def save(self) -> None:
        """Root's own file, but in the owner's directory: never through a link (safefs)."""
        safefs.write_file(self.state_path, json.dumps(self.state, indent=2), 0o600)

    @property
    def exists(self) -> bool:
        return bool(self.state)

    @property
    def pids(self) -> dict[str, list]:
        return self.state.setdefault("pids", {})

    @property
    def ports(self) -> dict[str, Any]:
        return self.state["ports"]

    @property
    def secrets(self) -> dict[str, str]:
        return self.state["secrets"]

    def record(self, name: str, record: list | None) -> None:
        if record is None:
            self.pids.pop(name, None)
        else:
            self.pids[name] = record
        self.save()

    def alive(self, name: str) -> bool:
        return plumbing.alive(self.pids.get(name))

    def pid(self, name: str) -> int | None:
        record = self.pids.get(name)
        return int(record[0]) if plumbing.alive(record) else None

    # -- files and processes ------------------------------------------------------------------
    def private_dir(self, path: Path) -> Path:
        """The owner's directory, 0700; a link or another user's directory there is refused
        (the cluster's directory is the owner's, and a socket directory may be in /tmp)."""
        return safefs.make_dir(path, self.owner)

    def config(self, path: Path, text: str) -> bool:
        """Write a part's file as the owner's; True when its content changed."""
        return write(path, text, owner=self.owner)

    def base_env(self) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                "HOME": str(self.root)}

    def start_process(self, name: str, argv: list[str], log_path: Path, *,
                      env: dict[str, str] | None = None, as_owner: bool = True,
                      cwd: Path | None = None) -> list:
        record = plumbing.start(argv, log=log_path, env=env or self.base_env(),
                                cwd=cwd or self.root, user=self.owner if as_owner else None)
        self.record(name, record)
        return record

    def stop_process(self, name: str, timeout: float = 20.0) -> None:
        record = self.pids.get(name)
        if record:
            plumbing.stop(record, timeout=timeout)
            self.record(name, None)

    # -- addresses ----------------------------------------------------------------------------
    def node_dir(self, node: str) -> Path:
        return self.root / node

    def socket_dir(self, node: str) -> Path:
        return plumbing.socket_dir(self.node_dir(node) / "run", ".s.PGSQL.65535")

    @property
    def pgbackrest_config(self) -> Path:
        """pgBackRest's configuration: every node's ``archive_command`` names it."""
        return self.root / "pgbackrest.conf"

    def leader_url(self, user: str = APP_ROLE, dbname: str = DBNAME) -> str:
        """The database through HAProxy: always the leader, a whole session of its own
        (migrations, bin/add-user, administration)."""
        password = self.secrets["app" if user == APP_ROLE else "superuser"]
        return f"postgresql://{user}:{password}@{HOST}:{self.ports['haproxy']}/{dbname}"

    def app_url(self) -> str:
        """What the instances use: PgBouncer, or HAProxy with ``--no-pgbouncer``."""
        port = self.ports["pgbouncer"] if self.state.get("pgbouncer") else self.ports["haproxy"]
        return f"postgresql://{APP_ROLE}:{self.secrets['app']}@{HOST}:{port}/{DBNAME}"

    @property
    def front_url(self) -> str:
        return f"http://{HOST}:{self.ports['front']}"

    def instance_url(self, index: int) -> str:
        return f"http://{HOST}:{self.ports['instances'][index]}"

    def rest_url(self, index: int) -> str:
        return f"http://{HOST}:{self.ports['patroni'][index]}"

    @property
    def rest_auth(self) -> dict[str, str]:
        """The Authorization header Patroni's REST API wants for changes."""
        return {"Authorization": f"Basic {self.rest_basic()}"}

    def rest_basic(self) -> str:
        password = self.state.get("secrets", {}).get("patroni_rest", "")
        return base64.b64encode(f"{PATRONI_USER}:{password}".encode()).decode()

    def etcd_url(self, path: str) -> str:
        return f"http://{HOST}:{self.ports['etcd_client']}/v3/{path}"

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view (GET /cluster) from the first node that answers."""
        for index in range(len(NODES)):
            try:
                return http_json(f"{self.rest_url(index)}/cluster",
                                 headers=self.rest_auth)["members"]
            except (OSError, ValueError, KeyError):
                continue
        return []

    def leader(self) -> str | None:
        """The running leader's node name, if there is one."""
        return next((m["name"] for m in self.members()
                     if m.get("role") == "leader" and m.get("state") == "running"), None)
