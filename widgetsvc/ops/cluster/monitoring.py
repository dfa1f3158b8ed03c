"""The cluster's monitoring (issue 19; docs/operations.md, "Metrics and alerts"): Debian's
Prometheus scraping every instance's metrics listener, nginx (through
prometheus-nginx-exporter and the front's ``stub_status`` on an internal listener), both
PostgreSQL servers (a prometheus-postgres-exporter each), Patroni's own ``/metrics`` and the
machine's disks (prometheus-node-exporter), with ``deploy/prometheus/alerts.yml`` loaded.

Kept out of topology.py: it calls :func:`assign_ports`, :func:`instance_env`,
:func:`with_stub_status`, :func:`start` and :data:`PARTS` (down) at one line each.
"""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING, Any

from widgetsvc.ops import plumbing
from widgetsvc.ops.cluster.packages import which
from widgetsvc.ops.cluster.render import DEPLOY_DIR, render

if TYPE_CHECKING:
    from widgetsvc.ops.cluster.topology import Cluster

HOST = "127.0.0.1"
NODES = ("pg1", "pg2")
# Stopped first on ``down`` (they only watch the rest).
PARTS = ["prometheus", "nginx-exporter", "node-exporter",
         *(f"postgres-exporter-{node}" for node in NODES)]
SCRAPE_INTERVAL = "5s"
_SINGLE = ("prometheus", "nginx_stub", "nginx_exporter", "node_exporter")


def assign_ports(cluster: Cluster) -> None:
    """Ports for the monitoring parts and each instance's ``METRICS_PORT``, picked once and
    kept in ``state.json`` (a stopped part whose port was taken meanwhile gets a new one)."""
    ports = cluster.state["ports"]
    mon: dict[str, Any] = ports.setdefault("monitoring", {})
    owners = {"prometheus": "prometheus", "nginx_stub": "nginx",
              "nginx_exporter": "nginx-exporter", "node_exporter": "node-exporter"}
    for key in _SINGLE:
        if key not in mon or not (plumbing.alive(cluster.pids.get(owners[key]))
                                  or plumbing.port_free(mon[key])):
            mon[key] = plumbing.free_ports(1)[0]
    exporters = mon.setdefault("postgres_exporters", [])
    for index, node in enumerate(NODES):
        if index >= len(exporters):
            exporters.append(plumbing.free_ports(1)[0])
        elif not (plumbing.alive(cluster.pids.get(f"postgres-exporter-{node}"))
                  or plumbing.port_free(exporters[index])):
            exporters[index] = plumbing.free_ports(1)[0]
    metrics = ports.setdefault("metrics", [])
    for index in range(len(ports["instances"])):
        if index >= len(metrics):
            metrics.append(plumbing.free_ports(1)[0])
        elif not (plumbing.alive(cluster.pids.get(f"instance-{index + 1}"))
                  or plumbing.port_free(metrics[index])):
            metrics[index] = plumbing.free_ports(1)[0]


def instance_env(cluster: Cluster, index: int) -> dict[str, str]:
    """Each instance's own metrics listener (always on in the cluster: Prometheus scrapes it)."""
    metrics = cluster.state["ports"].get("metrics") or []
    if index >= len(metrics):
        assign_ports(cluster)
        metrics = cluster.state["ports"]["metrics"]
    return {"METRICS_PORT": str(metrics[index])}


def with_stub_status(cluster: Cluster, nginx_conf: str) -> str:
    """The front's nginx.conf with one more server: ``stub_status`` on an internal loopback
    listener, for prometheus-nginx-exporter (never on the public port)."""
    if "nginx_stub" not in cluster.state["ports"].get("monitoring", {}):
        assign_ports(cluster)
    port = cluster.state["ports"]["monitoring"]["nginx_stub"]
    server = (
        "\n    # prometheus-nginx-exporter reads the connection counts here (internal only)\n"
        "    server {\n"
        f"        listen {HOST}:{port};\n"
        "        access_log off;\n"
        "        location = /stub_status { stub_status; }\n"
        "        location / { return 404; }\n"
        "    }\n")
    end = nginx_conf.rstrip().rindex("}")  # the http block's closing brace
    return nginx_conf[:end] + server + nginx_conf[end:]


def url(cluster: Cluster) -> str | None:
    port = cluster.state.get("ports", {}).get("monitoring", {}).get("prometheus")
    return f"http://{HOST}:{port}" if port else None


def _ok(address: str) -> bool:
    try:
        with urllib.request.urlopen(address, timeout=2) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except OSError:
        return False


def prometheus_config(cluster: Cluster) -> str:
    ports = cluster.state["ports"]
    mon = ports["monitoring"]
    count = cluster.state["instances"]

    def targets(values: list[int]) -> str:
        return ", ".join(f"'{HOST}:{port}'" for port in values)

    return render(
        "prometheus/prometheus.yml.template",
        scrape_interval=SCRAPE_INTERVAL,
        rules=str(cluster.root / "prometheus" / "alerts.yml"),
        instances=targets(ports["metrics"][:count]),
        nginx_exporter=f"{HOST}:{mon['nginx_exporter']}",
        postgres_exporters=targets(mon["postgres_exporters"]),
        patroni=targets(ports["patroni"]),
        node_exporter=f"{HOST}:{mon['node_exporter']}",
        prometheus=f"{HOST}:{mon['prometheus']}")


def _start(cluster: Cluster, name: str, argv: list[str], check_url: str, log,
           env: dict[str, str] | None = None, restart: bool = False) -> None:
    record = cluster.pids.get(name)
    if plumbing.alive(record) and not restart:
        return
    cluster._stop_part(name)
    log(f"cluster: starting {name} on {check_url.rsplit('/', 1)[0]}")
    record = cluster._start_part(name, argv, cluster.root / f"{name}.log",
                                 env={**cluster._base_env(), **(env or {})})
    plumbing.wait_until(lambda: _ok(check_url), timeout=60, what=name,
                     log=cluster.root / f"{name}.log", record=record)


def start(cluster: Cluster, log) -> None:
    """The exporters, then Prometheus (restarted when its configuration changed)."""
    mon = cluster.state["ports"]["monitoring"]
    secret = cluster.state["secrets"]["superuser"]
    _start(cluster, "nginx-exporter", [
        which("prometheus-nginx-exporter") or "prometheus-nginx-exporter",
        "-nginx.scrape-uri", f"http://{HOST}:{mon['nginx_stub']}/stub_status",
        "-web.listen-address", f"{HOST}:{mon['nginx_exporter']}"],
        f"http://{HOST}:{mon['nginx_exporter']}/metrics", log)
    for index, node in enumerate(NODES):
        port = mon["postgres_exporters"][index]
        pg_port = cluster.ports["postgres"][index]
        _start(cluster, f"postgres-exporter-{node}", [
            which("prometheus-postgres-exporter") or "prometheus-postgres-exporter",
            f"--web.listen-address={HOST}:{port}"],
            f"http://{HOST}:{port}/metrics", log,
            # The server itself, not HAProxy: each server's own state (a replica too). The
            # password reaches the exporter in its environment, never on a command line.
            env={"DATA_SOURCE_NAME": f"postgresql://postgres:{secret}@{HOST}:{pg_port}/"
                                     "postgres?sslmode=disable"})
    _start(cluster, "node-exporter", [
        which("prometheus-node-exporter") or "prometheus-node-exporter",
        f"--web.listen-address={HOST}:{mon['node_exporter']}",
        "--collector.disable-defaults", "--collector.filesystem", "--collector.cpu",
        "--collector.meminfo", "--collector.loadavg"],
        f"http://{HOST}:{mon['node_exporter']}/metrics", log)
    directory = cluster._private_dir(cluster.root / "prometheus")
    rules_changed = cluster._config(directory / "alerts.yml",
                                    (DEPLOY_DIR / "prometheus" / "alerts.yml").read_text())
    changed = cluster._config(directory / "prometheus.yml", prometheus_config(cluster))
    _start(cluster, "prometheus", [
        which("prometheus") or "prometheus",
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={cluster._private_dir(directory / 'data')}",
        f"--web.listen-address={HOST}:{mon['prometheus']}",
        "--storage.tsdb.retention.time=15d"],
        f"http://{HOST}:{mon['prometheus']}/-/ready", log, restart=changed or rules_changed)
