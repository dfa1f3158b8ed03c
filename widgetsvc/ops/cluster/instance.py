"""A widgetsvc instance: gunicorn on its own loopback port, as the caller (like ``bin/serve``),
with the cluster's database, secret and metrics listener in its environment."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from widgetsvc.config import ENV_NAMES, Config
from widgetsvc.ops.cluster.loopback import http_status
from widgetsvc.ops.cluster.part import Log, Part
from widgetsvc.ops.cluster.state import HOST, ClusterState
from widgetsvc.ops.localdb import REPO_ROOT
from widgetsvc.ops.settings import GUNICORN_ENV_NAMES

# The cluster gives each instance its own: a dead instance's new port is no change of settings.
PER_INSTANCE = ("METRICS_PORT",)
# Settings whose change restarts the instances on the next ``up``: every one the service reads
# but those, and gunicorn's own.
SETTINGS = tuple(name for name in (*ENV_NAMES, *GUNICORN_ENV_NAMES) if name not in PER_INSTANCE)


def instance_env(state: ClusterState, index: int) -> dict[str, str]:
    """The caller's environment with the cluster's database, secret, port and metrics port."""
    env = {k: v for k, v in os.environ.items() if k != "WIDGETSVC_GUNICORN_SOCKET"}
    env.update({
        "DATABASE_URL": state.app_url(),
        "DB_PGBOUNCER": "1" if state.state["pgbouncer"] else "0",
        "SECRET_KEY": state.secrets["secret_key"],
        "HOST": HOST, "PORT": str(state.ports["instances"][index]),
        # the front reaches the instances over TCP from HOST: its X-Forwarded-For
        # names the client (the failed-login lock's address, docs/API.md §8.1)
        "FORWARDED_ALLOW_IPS": HOST,
        # always on in the cluster: Prometheus scrapes it
        "METRICS_PORT": str(state.ports["metrics"][index])})
    return env


def settings_digest(state: ClusterState) -> str:
    """The settings the instances start with, hashed (``bin/cluster upgrade`` applies a
    change one instance at a time; ``up`` restarts them all)."""
    return hashlib.sha256(json.dumps(
        {k: instance_env(state, 0).get(k) for k in SETTINGS}).encode()).hexdigest()


class Instance(Part):
    """Instance ``index + 1`` (0-based ``index`` into the instances' ports)."""

    as_owner = False
    ready_timeout = 90.0

    def __init__(self, state: ClusterState, index: int):
        super().__init__(state)
        self.index = index
        self.name = f"instance-{index + 1}"
        self.label = f"instance {index + 1}"

    @property
    def url(self) -> str:
        return self.state.instance_url(self.index)

    @property
    def cwd(self) -> Path:
        return REPO_ROOT

    def argv(self) -> list[str]:
        return [str(Path(sys.executable).parent / "gunicorn"), "-c",
                str(REPO_ROOT / "gunicorn.conf.py")]

    def env(self) -> dict[str, str]:
        return instance_env(self.state, self.index)

    def ports(self) -> list[int]:
        return [self.state.ports["instances"][self.index], self.state.ports["metrics"][self.index]]

    def start(self, log: Log) -> None:
        Config.from_env(self.env())  # a bad setting: one clear line, not a dead instance's log
        super().start(log)

    def ready(self) -> bool:
        return http_status(f"{self.url}/api/v1/health") == 200
