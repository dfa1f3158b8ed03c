"""The front: nginx over every instance, rendered from the same template as ``bin/serve``'s
(``widgetsvc.ops.front``) with the cluster's fragments in its placeholders
(``deploy/nginx/cluster/``): reads retried on the next instance, writes never, and an internal
``stub_status`` listener for the metrics exporter."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Collection
from pathlib import Path

from widgetsvc.config import Config
from widgetsvc.ops import front, plumbing
from widgetsvc.ops.cluster.instance import instance_env
from widgetsvc.ops.cluster.loopback import http_status
from widgetsvc.ops.cluster.part import Part
from widgetsvc.ops.cluster.render import DEPLOY_DIR, render
from widgetsvc.ops.cluster.state import HOST, ClusterError
from widgetsvc.ops.settings import listen_address

FRAGMENTS = DEPLOY_DIR / "nginx" / "cluster"
# A request nginx holds may wait for its upstream this long (proxy_read_timeout); the old
# workers of a reload exit once theirs are answered.
DRAIN_TIMEOUT = 90.0


def _fragment(name: str) -> str:
    return (FRAGMENTS / name).read_text(encoding="utf-8").rstrip("\n")


class Front(Part):
    name = "nginx"
    ready_timeout = 30.0

    @property
    def label(self) -> str:
        return f"nginx on {self.state.front_url}"

    @property
    def run_dir(self) -> Path:
        return self.state.root / "nginx"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "nginx.conf"

    def config(self, drained: Collection[int] = ()) -> str:
        """nginx.conf for every instance, those ``drained`` (0-based) marked ``down``."""
        state = self.state
        count = state.state["instances"]
        upstreams = [f"{HOST}:{port}" for port in state.ports["instances"][:count]]
        # The login gate: every instance's hashing slots together, unless AUTH_IN_FLIGHT is set.
        slots = count * Config.from_env(instance_env(state, 0)).hash_slots
        stub = render("nginx/cluster/stub_status.conf.template",
                      listen=f"{HOST}:{state.ports['monitoring']['nginx_stub']}")
        return front.render(
            upstreams, listen_address(HOST, state.ports["front"]), self.run_dir,
            limits=state.settings.front, hash_slots=slots,
            drained=[upstreams[index] for index in drained],
            server_directives=_fragment("server_directives.conf"),
            root_location=_fragment("root_location.conf"),
            locations=_fragment("locations.conf"), servers=stub.rstrip("\n"))

    def render(self) -> bool:
        self.state.private_dir(self.run_dir)
        return self.state.config(self.config_path, self.config())

    def reload(self) -> None:
        """New upstreams or limits: nginx rereads its file on SIGHUP."""
        os.kill(int(self.state.pids[self.name][0]), signal.SIGHUP)
        time.sleep(0.5)

    def argv(self) -> list[str]:
        return [front.ensure_nginx(), "-e", "stderr", "-p", str(self.run_dir),
                "-c", str(self.config_path)]

    def ports(self) -> list[int]:
        return [self.state.ports["front"], self.state.ports["monitoring"]["nginx_stub"]]

    def ready(self) -> bool:
        return http_status(f"{self.state.front_url}/api/v1/health") == 200

    def workers(self) -> set[int]:
        """The master's live workers, old and new (they stay in its process group)."""
        master = int(self.state.pids[self.name][0])
        return set(plumbing.group_members(master)) - {master}

    def reload_drained(self, drained: Collection[int] = (),
                       timeout: float = DRAIN_TIMEOUT) -> None:
        """Write the configuration with ``drained`` marked down, reload, and return once
        every worker that ran before has exited: from then on only it routes requests."""
        if not self.running:
            raise ClusterError("nginx is not running: bin/cluster up first")
        record = self.state.pids[self.name]
        self.state.config(self.config_path, self.config(drained))
        before = self.workers()
        os.kill(int(record[0]), signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            now = self.workers()
            if not (now & before) and now - before:
                return
            if not self.running:
                raise ClusterError("nginx exited while reloading\n"
                                   + plumbing.tail(self.log_path))
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"nginx: the workers from before the reload still run after {timeout:.0f} s "
                    "(a request still in flight, or the new configuration was refused)\n"
                    + plumbing.tail(self.log_path))
            time.sleep(0.1)
