"""One protocol for every process of the cluster: render its configuration, start, ready,
reload, stop. ``Part.up`` is the one sequence they all follow (render -> reload when running
and changed -> start when not running -> wait until ready), so a part says only what differs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from widgetsvc.ops import plumbing
from widgetsvc.ops.cluster.state import ClusterError, ClusterState

Log = Callable[[str], None]


class Part:
    """A process of the cluster, recorded in ``state.json`` under ``name``."""

    name: str = ""
    label: str = ""  # how the log names it ("etcd", "Patroni pg1", ...)
    ready_timeout: float = 60.0
    stop_timeout: float = 20.0
    as_owner: bool = True  # runs as the unprivileged owner (the instances run as the caller)

    def __init__(self, state: ClusterState):
        self.state = state

    # -- what each part says ------------------------------------------------------------------
    def render(self) -> bool:
        """Write the part's configuration from its ``deploy/`` template; True when changed."""
        return False

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return self.state.base_env()

    def ready(self) -> bool:
        """Serving: what ``up`` waits for (an error counts as not yet)."""
        raise NotImplementedError

    def ports(self) -> list[int]:
        """The TCP ports it listens on: ``wait`` checks that its own processes hold them."""
        return []

    def owners(self) -> set[int]:
        """Its processes: the recorded one's process group."""
        record = self.state.pids.get(self.name)
        return set(plumbing.group_members(int(record[0]))) if record else set()

    def reload(self) -> None:
        """Take a changed configuration: a restart unless the part reloads its file itself."""
        self.stop()

    @property
    def log_path(self) -> Path:
        return self.state.root / f"{self.name}.log"

    @property
    def cwd(self) -> Path:
        return self.state.root

    # -- the protocol -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.state.alive(self.name)

    def start(self, log: Log) -> None:
        self.stop()  # what a killed leader left in its process group
        log(f"cluster: starting {self.label or self.name}")
        self.state.start_process(self.name, self.argv(), self.log_path, env=self.env(),
                                 as_owner=self.as_owner, cwd=self.cwd)

    def stop(self, timeout: float | None = None) -> None:
        self.state.stop_process(self.name, self.stop_timeout if timeout is None else timeout)

    def strangers(self) -> list[str]:
        """Its ports where another process listens ("port P: pid N (name)"): a server that
        answers there is not this part, whatever it answers."""
        mine = self.owners()
        return [f"port {port}: " + ", ".join(f"pid {pid} ({name})" for pid, name in held.items())
                for port in self.ports()
                if (held := plumbing.listeners(port)) and not held.keys() & mine]

    def wait(self, timeout: float | None = None) -> None:
        """Until ``ready``; then its ports must be its own (a port taken between ``up``
        choosing it and the part binding it would otherwise pass for the part)."""
        plumbing.wait_until(self.ready, timeout=timeout or self.ready_timeout,
                            what=self.label or self.name, log=self.log_path,
                            record=self.state.pids.get(self.name))
        if strangers := self.strangers():
            raise ClusterError(f"{self.label or self.name} is not the one answering: "
                               + "; ".join(strangers) + "\n" + plumbing.tail(self.log_path))

    def up(self, log: Log, *, wait: bool = True) -> bool:
        """Render, reload when running with a changed file, start when not running, wait.
        True when the part was started."""
        changed = self.render()
        if self.running and changed:
            self.reload()
        started = not self.running
        if started:
            self.start(log)
        if wait:
            self.wait()
        return started
