"""The cluster's loopback ports: picked once and kept in ``state.json``; a stopped part whose
port something else took meanwhile gets a new free one (every ``up`` renders the
configuration files again)."""

from __future__ import annotations

from typing import Any

from widgetsvc.ops import plumbing
from widgetsvc.ops.cluster.state import HOST, NODES, ClusterState

# ports[key] (or ports["monitoring"][key]) -> the part that listens there
_SINGLE = {"etcd_client": "etcd", "etcd_peer": "etcd", "haproxy": "haproxy",
           "pgbouncer": "pgbouncer", "front": "nginx"}
_MONITORING = {"prometheus": "prometheus", "nginx_stub": "nginx",
               "nginx_exporter": "nginx-exporter", "node_exporter": "node-exporter"}


def _kept(state: ClusterState, part: str, port: int | None) -> bool:
    return port is not None and (state.alive(part) or plumbing.port_free(port))


def _taken(value: Any) -> set[int]:
    if isinstance(value, dict):
        return set().union(*map(_taken, value.values()))
    if isinstance(value, list):
        return set().union(*map(_taken, value))
    return {value} if isinstance(value, int) else set()


def _fresh(state: ClusterState) -> int:
    """A port free now and not already another part's in ``state.json``."""
    taken = _taken(state.state.get("ports", {}))
    while True:
        (port,) = plumbing.free_ports(1, HOST)
        if port not in taken:
            return port


def _fill(state: ClusterState, table: dict[str, Any], owners: dict[str, str]) -> None:
    for key, part in owners.items():
        if not _kept(state, part, table.get(key)):
            table[key] = _fresh(state)


def _fill_list(state: ClusterState, ports: list[int], parts: list[str]) -> None:
    for index, part in enumerate(parts):
        if index >= len(ports):
            ports.append(_fresh(state))
        elif not _kept(state, part, ports[index]):
            ports[index] = _fresh(state)


def assign(state: ClusterState, instances: int) -> None:
    """Every part's ports, for ``instances`` instances (a port list never shrinks)."""
    ports = state.state.setdefault("ports", {})
    _fill(state, ports, _SINGLE)
    for key in ("postgres", "patroni"):
        _fill_list(state, ports.setdefault(key, []), [f"patroni-{node}" for node in NODES])
    count = max(instances, len(ports.get("instances", [])))
    names = [f"instance-{i + 1}" for i in range(count)]
    _fill_list(state, ports.setdefault("instances", []), names)
    _fill_list(state, ports.setdefault("metrics", []), names)
    monitoring = ports.setdefault("monitoring", {})
    _fill(state, monitoring, _MONITORING)
    _fill_list(state, monitoring.setdefault("postgres_exporters", []),
               [f"postgres-exporter-{node}" for node in NODES])
