"""Patroni, one per PostgreSQL node: it runs the node's PostgreSQL, elects the leader through
etcd and keeps the other node a synchronous standby. Every node archives its WAL with
pgBackRest into one stanza (PostgreSQL archives only on the primary)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from widgetsvc.ops import plumbing
from widgetsvc.ops.cluster.loopback import http_status
from widgetsvc.ops.cluster.packages import which
from widgetsvc.ops.cluster.part import Log, Part
from widgetsvc.ops.cluster.render import render
from widgetsvc.ops.cluster.state import (
    HOST,
    NODES,
    PATRONI_USER,
    SCOPE,
    ClusterError,
    ClusterState,
)
from widgetsvc.ops.pgbackrest import CLUSTER_STANZA, archive_command


class Patroni(Part):
    """The node ``NODES[index]``: Patroni and, under it, its PostgreSQL."""

    stop_timeout = 60.0  # Patroni stops its PostgreSQL (fast shutdown) before it exits

    def __init__(self, state: ClusterState, index: int):
        super().__init__(state)
        self.index = index
        self.node = NODES[index]
        self.name = f"patroni-{self.node}"
        self.label = f"Patroni {self.node}"

    @property
    def directory(self) -> Path:
        return self.state.node_dir(self.node)

    @property
    def log_path(self) -> Path:
        return self.directory / "patroni.log"

    def archive_command(self) -> str:
        """The node's ``archive_command`` as a YAML (JSON) string for patroni.yml."""
        return json.dumps(archive_command(self.state.pgbackrest_config, CLUSTER_STANZA,
                                          self.directory / "data"))

    def render(self) -> bool:
        state, secrets, ports = self.state, self.state.secrets, self.state.ports
        directory = state.private_dir(self.directory)
        state.private_dir(state.socket_dir(self.node))
        return state.config(directory / "patroni.yml", render(
            "patroni/patroni.yml.template", scope=SCOPE, name=self.node, host=HOST,
            rest_port=ports["patroni"][self.index], pg_port=ports["postgres"][self.index],
            etcd_hosts=f"{HOST}:{ports['etcd_client']}",
            data_dir=directory / "data", bin_dir=state.bindir, pgpass=directory / "pgpass",
            superuser_password=secrets["superuser"],
            replication_password=secrets["replication"],
            rest_username=PATRONI_USER, rest_password=secrets["patroni_rest"],
            etcd_username=PATRONI_USER, etcd_password=secrets["etcd_patroni"],
            socket_dir=state.socket_dir(self.node), hba_network=f"{HOST}/32",
            max_connections=200, archive_command=self.archive_command()))

    def reload(self) -> None:
        """Patroni rereads its file on SIGHUP (and applies what PostgreSQL can take)."""
        os.kill(int(self.state.pids[self.name][0]), signal.SIGHUP)

    def argv(self) -> list[str]:
        return [which("patroni"), str(self.directory / "patroni.yml")]

    def env(self) -> dict[str, str]:
        return {**self.state.base_env(), "HOME": str(self.directory), "PYTHONUNBUFFERED": "1"}

    def ready(self) -> bool:
        """Its REST API answers for a running PostgreSQL."""
        return http_status(f"{self.state.rest_url(self.index)}/health") == 200

    def ports(self) -> list[int]:
        return [self.state.ports["patroni"][self.index], self.state.ports["postgres"][self.index]]

    def owners(self) -> set[int]:
        """Patroni's process group and its PostgreSQL (which has a session of its own)."""
        postmaster = self.postmaster_pid()
        return super().owners() | ({postmaster} if postmaster else set())

    def postmaster_pid(self) -> int | None:
        """The node's running postmaster, from its ``postmaster.pid``."""
        data_dir = self.directory / "data"
        try:
            pid = int((data_dir / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        # A stale pid file's pid may since belong to another process: it must be this server.
        if str(data_dir).encode() not in cmdline or plumbing.start_time(pid) is None:
            return None
        return pid

    def stop_orphan_postmaster(self) -> None:
        """A postmaster whose Patroni was killed keeps running (it has its own session)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        deadline = time.monotonic() + 20
        while plumbing.start_time(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if plumbing.start_time(pid) is not None:
            plumbing.stop([pid, plumbing.start_time(pid)], sig=signal.SIGKILL, timeout=5)


def wait_replicated(state: ClusterState, log: Log, timeout: float = 120) -> None:
    """Until there is a leader and every node runs with it (one as synchronous standby)."""
    log("cluster: waiting for the leader and the synchronous standby")

    def ready() -> bool:
        members = state.members()
        roles = sorted(m.get("role", "") for m in members)
        return (len(members) == len(NODES) and "leader" in roles and "sync_standby" in roles
                and all(m.get("state") in ("running", "streaming") for m in members))

    try:
        plumbing.wait_until(ready, timeout=timeout, what="Patroni cluster")
    except RuntimeError as exc:
        logs = "\n".join(plumbing.tail(state.node_dir(n) / "patroni.log") for n in NODES)
        raise ClusterError(f"{exc}\n{logs}") from None
    nodes = [Patroni(state, index) for index in range(len(NODES))]
    if strangers := [s for node in nodes for s in node.strangers()]:
        raise ClusterError("Patroni cluster: a node's port is another process's: "
                           + "; ".join(strangers))
