"""The cluster's monitoring (issue 19; docs/operations.md, "Metrics and alerts"): Debian's
Prometheus scraping every instance's metrics listener, nginx (through
prometheus-nginx-exporter and the front's ``stub_status`` on an internal listener), both
PostgreSQL servers (a prometheus-postgres-exporter each), Patroni's own ``/metrics`` and the
machine's disks (prometheus-node-exporter), with ``deploy/prometheus/alerts.yml`` loaded.
"""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

from widgetsvc.ops import plumbing
from widgetsvc.ops.cluster.loopback import answers_ok
from widgetsvc.ops.cluster.packages import which
from widgetsvc.ops.cluster.part import Part
from widgetsvc.ops.cluster.render import DEPLOY_DIR, render
from widgetsvc.ops.cluster.state import HOST, NODES, SUPERUSER, ClusterError, ClusterState

SCRAPE_INTERVAL = "5s"


class Exporter(Part):
    """A Prometheus exporter: started when not running, ready when its /metrics answers."""

    program: str = ""
    port_key: str = ""

    @property
    def port(self) -> int:
        return self.state.ports["monitoring"][self.port_key]

    @property
    def listen(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.name} on http://{self.listen}"

    def ports(self) -> list[int]:
        return [self.port]

    def ready(self) -> bool:
        return answers_ok(f"http://{self.listen}/metrics")


class NginxExporter(Exporter):
    name = "nginx-exporter"
    port_key = "nginx_exporter"

    def argv(self) -> list[str]:
        stub = self.state.ports["monitoring"]["nginx_stub"]
        return [which("prometheus-nginx-exporter") or "prometheus-nginx-exporter",
                "-nginx.scrape-uri", f"http://{HOST}:{stub}/stub_status",
                "-web.listen-address", self.listen]


class PostgresExporter(Exporter):
    """One per node: the server itself, not HAProxy (each server's own state, a replica's
    too)."""

    def __init__(self, state: ClusterState, index: int):
        super().__init__(state)
        self.index = index
        self.name = f"postgres-exporter-{NODES[index]}"

    @property
    def port(self) -> int:
        return self.state.ports["monitoring"]["postgres_exporters"][self.index]

    def argv(self) -> list[str]:
        return [which("prometheus-postgres-exporter") or "prometheus-postgres-exporter",
                f"--web.listen-address={self.listen}"]

    def env(self) -> dict[str, str]:
        # The password reaches the exporter in its environment, never on a command line.
        secret = self.state.secrets["superuser"]
        pg_port = self.state.ports["postgres"][self.index]
        return {**self.state.base_env(), "DATA_SOURCE_NAME":
                f"postgresql://{SUPERUSER}:{secret}@{HOST}:{pg_port}/postgres?sslmode=disable"}


class NodeExporter(Exporter):
    name = "node-exporter"
    port_key = "node_exporter"

    def argv(self) -> list[str]:
        return [which("prometheus-node-exporter") or "prometheus-node-exporter",
                f"--web.listen-address={self.listen}", "--collector.disable-defaults",
                "--collector.filesystem", "--collector.cpu", "--collector.meminfo",
                "--collector.loadavg"]


class Prometheus(Exporter):
    """Reloaded (SIGHUP) when its configuration or the alert rules changed."""

    name = "prometheus"
    port_key = "prometheus"

    @property
    def directory(self) -> Path:
        return self.state.root / "prometheus"

    def config(self) -> str:
        ports = self.state.ports
        monitoring = ports["monitoring"]
        count = self.state.state["instances"]

        def targets(values: list[int]) -> str:
            return ", ".join(f"'{HOST}:{port}'" for port in values)

        return render(
            "prometheus/prometheus.yml.template",
            scrape_interval=SCRAPE_INTERVAL,
            rules=str(self.directory / "alerts.yml"),
            instances=targets(ports["metrics"][:count]),
            nginx_exporter=f"{HOST}:{monitoring['nginx_exporter']}",
            postgres_exporters=targets(monitoring["postgres_exporters"]),
            patroni=targets(ports["patroni"]),
            node_exporter=f"{HOST}:{monitoring['node_exporter']}",
            prometheus=self.listen)

    def render(self) -> bool:
        directory = self.state.private_dir(self.directory)
        rules = self.state.config(directory / "alerts.yml",
                                  (DEPLOY_DIR / "prometheus" / "alerts.yml").read_text())
        return self.state.config(directory / "prometheus.yml", self.config()) or rules

    def argv(self) -> list[str]:
        return [which("prometheus") or "prometheus",
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.state.private_dir(self.directory / 'data')}",
                f"--web.listen-address={self.listen}", "--storage.tsdb.retention.time=15d"]

    def ready(self) -> bool:
        return answers_ok(f"http://{self.listen}/-/ready")

    def reload(self) -> None:
        """SIGHUP, then until Prometheus says it loaded the new files. A reload marks the
        series of a target it no longer scrapes stale at once; a restart would leave their
        last samples in every query for the five minutes of its lookback (a part moved to
        another port counted twice in ``sum(patroni_sync_standby)``)."""
        before = self._reload_metrics()
        os.kill(int(self.state.pids[self.name][0]), signal.SIGHUP)

        key = "prometheus_config_last_reload_success_timestamp_seconds"
        now: dict[str, float] = {}

        def answered() -> bool:  # loaded, or refused the files
            now.update(self._reload_metrics())
            return (now.get(key, 0.0) > before.get(key, 0.0)
                    or now.get("prometheus_config_last_reload_successful") == 0.0)

        if not plumbing.poll(answered, timeout=30) or now.get(key, 0.0) <= before.get(key, 0.0):
            raise ClusterError("prometheus did not load its new configuration\n"
                               + plumbing.tail(self.log_path))

    def _reload_metrics(self) -> dict[str, float]:
        """Prometheus's own ``prometheus_config_last_reload_*`` values."""
        url = f"http://{self.listen}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
            lines = resp.read().decode().splitlines()
        return {name: float(value) for name, _, value in
                (line.partition(" ") for line in lines)
                if name.startswith("prometheus_config_last_reload_")}


def parts(state: ClusterState) -> list[Part]:
    """In start order: the exporters, then Prometheus (``down`` stops them first)."""
    return [NginxExporter(state), *(PostgresExporter(state, i) for i in range(len(NODES))),
            NodeExporter(state), Prometheus(state)]


def url(state: ClusterState) -> str | None:
    port = state.state.get("ports", {}).get("monitoring", {}).get("prometheus")
    return f"http://{HOST}:{port}" if port else None
