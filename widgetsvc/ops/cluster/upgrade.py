"""``bin/cluster upgrade``: replace the instances one at a time without failing a request.

For each instance in turn: the front stops sending it new requests (nginx reloaded with that
server marked ``down``; the old nginx workers finish what they hold and exit), the instance
stops gracefully (nothing reaches it any more), the instance starts again with the code and the
settings of now, and once it answers ``/api/v1/health`` the front sends it requests again. Then
the front reloads with the configuration of now. Pending migrations run first: they must be
safe while the previous release serves (README, "Migrations": expand, then contract).

Nothing else restarts: etcd, Patroni, HAProxy and PgBouncer keep running (``bin/cluster up``
restarts a part whose configuration changed).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from widgetsvc.ops import plumbing
from widgetsvc.ops.cluster.topology import HOST, Cluster, ClusterError, _http_status, _owner

# A request nginx holds may wait for its upstream this long (proxy_read_timeout); the old
# workers of a reload exit once theirs are answered.
DRAIN_TIMEOUT = 90.0


def nginx_workers(master: int) -> set[int]:
    """The live children of the nginx master ``master`` (its workers, old and new)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[1]) == master:
            found.add(int(entry.name))
    return found


def drained_config(cluster: Cluster, run_dir: Path, drained: set[int]) -> str:
    """The front's configuration with the instances ``drained`` (0-based) marked ``down``:
    nginx sends them no new request."""
    text = cluster.front_config(run_dir)
    for index in drained:
        line = f"        server {HOST}:{cluster.ports['instances'][index]};\n"
        if text.count(line) != 1:
            raise ClusterError(f"instance {index + 1} is not in the front's upstream once")
        text = text.replace(line, line.replace(";", " down;"))
    return text


def reload_front(cluster: Cluster, text: str, timeout: float = DRAIN_TIMEOUT) -> None:
    """Write the front's configuration, reload nginx, and return once every worker that ran
    before the reload has exited: from then on only the new configuration routes requests."""
    record = cluster.pids.get("nginx")
    if not plumbing.alive(record):
        raise ClusterError("nginx is not running: bin/cluster up first")
    master = int(record[0])
    run_dir = cluster.root / "nginx"
    cluster._config(run_dir / "nginx.conf", text)  # noqa: SLF001 (the owner's file, as up does)
    before = nginx_workers(master)
    os.kill(master, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:
        now = nginx_workers(master)
        if not (now & before) and now - before:
            return
        if not plumbing.alive(record):
            raise ClusterError("nginx exited while reloading\n"
                               + plumbing.tail(cluster.root / "nginx.log"))
        if time.monotonic() > deadline:
            raise ClusterError(
                f"nginx: the workers from before the reload still run after {timeout:.0f} s "
                "(a request still in flight, or the new configuration was refused)\n"
                + plumbing.tail(cluster.root / "nginx.log"))
        time.sleep(0.1)


def _healthy(cluster: Cluster, index: int) -> bool:
    try:
        return _http_status(f"{cluster.instance_url(index)}/api/v1/health") == 200
    except OSError:
        return False


def rolling_upgrade(cluster: Cluster, log: Callable[[str], None] = print) -> dict:
    """Migrate, then replace each instance behind the front, then reload the front. Returns
    what was replaced: ``{"instances": [{"index", "old_pid", "new_pid", "seconds"}]}``."""
    if not cluster.exists or not plumbing.alive(cluster.pids.get("nginx")):
        raise ClusterError("no running cluster here: bin/cluster up first")
    count = int(cluster.state.get("instances", 0))
    if count < 2:
        raise ClusterError("a rolling upgrade needs at least 2 instances (one serves while "
                           "the other is replaced): bin/cluster up --instances 2")
    cluster.owner = _owner()  # who owns the front's configuration (as in up)
    for index in range(count):
        if not plumbing.alive(cluster.pids.get(f"instance-{index + 1}")) or not _healthy(
                cluster, index):
            raise ClusterError(f"instance {index + 1} is not serving: bin/cluster up first")
    cluster._bootstrap_database(log)  # noqa: SLF001 (expand migrations, under lock_timeout)
    # The instances started below get the settings of now; the others are not restarted for
    # them (up would restart every instance at once). Should the upgrade stop half-way, the
    # old digest is put back: the next up then knows some instances run older settings.
    previous = cluster.state.get("instance_settings")
    cluster.state["instance_settings"] = cluster.instance_settings_digest()
    cluster._save()  # noqa: SLF001
    try:
        replaced = _replace_each(cluster, count, log)
    except BaseException:
        cluster.state["instance_settings"] = previous
        cluster._save()  # noqa: SLF001
        raise
    log("upgrade: reloading the front")
    reload_front(cluster, cluster.front_config(cluster.root / "nginx"))
    return {"instances": replaced}


def _replace_each(cluster: Cluster, count: int, log: Callable[[str], None]) -> list[dict]:
    """Drain, stop, start and restore each instance in turn (module docstring)."""
    run_dir = cluster.root / "nginx"
    replaced = []
    for index in range(count):
        name = f"instance-{index + 1}"
        started = time.monotonic()
        old_pid = int(cluster.pids[name][0])
        log(f"upgrade: draining instance {index + 1}")
        reload_front(cluster, drained_config(cluster, run_dir, {index}))
        log(f"upgrade: stopping instance {index + 1} (pid {old_pid})")
        graceful = float(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30") or 30)
        cluster._stop_part(name, timeout=graceful + 10)  # noqa: SLF001
        cluster._start_instances(log)  # noqa: SLF001 (starts the one stopped, waits for health)
        new_pid = int(cluster.pids[name][0])
        log(f"upgrade: instance {index + 1} serving again (pid {new_pid})")
        reload_front(cluster, drained_config(cluster, run_dir, set()))
        replaced.append({"index": index + 1, "old_pid": old_pid, "new_pid": new_pid,
                         "seconds": round(time.monotonic() - started, 2)})
    return replaced
