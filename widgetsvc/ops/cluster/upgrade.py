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

import time

from widgetsvc.ops.cluster import database
from widgetsvc.ops.cluster.hacluster import HACluster
from widgetsvc.ops.cluster.instance import Instance, settings_digest
from widgetsvc.ops.cluster.loopback import answers_ok
from widgetsvc.ops.cluster.part import Log
from widgetsvc.ops.cluster.state import ClusterError


def rolling_upgrade(cluster: HACluster, log: Log = print) -> dict:
    """Migrate, then replace each instance behind the front, then reload the front. Returns
    what was replaced: ``{"instances": [{"index", "old_pid", "new_pid", "seconds"}]}``."""
    if not cluster.exists or not cluster.front.running:
        raise ClusterError("no running cluster here: bin/cluster up first")
    instances = cluster.instances()
    if len(instances) < 2:
        raise ClusterError("a rolling upgrade needs at least 2 instances (one serves while "
                           "the other is replaced): bin/cluster up --instances 2")
    for part in instances:
        if not part.running or not answers_ok(f"{part.url}/api/v1/health"):
            raise ClusterError(f"{part.label} is not serving: bin/cluster up first")
    database.bootstrap(cluster, log)  # expand migrations, under lock_timeout
    # The instances started below get the settings of now; the others are not restarted for
    # them (up would restart every instance at once). Should the upgrade stop half-way, the
    # old digest is put back: the next up then knows some instances run older settings.
    previous = cluster.state.get("instance_settings")
    cluster.state["instance_settings"] = settings_digest(cluster)
    cluster.save()
    try:
        replaced = [_replace(cluster, part, log) for part in instances]
    except BaseException:
        cluster.state["instance_settings"] = previous
        cluster.save()
        raise
    log("upgrade: reloading the front")
    cluster.front.reload_drained()
    return {"instances": replaced}


def _replace(cluster: HACluster, part: Instance, log: Log) -> dict:
    """Drain, stop, start and restore one instance (module docstring)."""
    started = time.monotonic()
    old_pid = int(cluster.pids[part.name][0])
    log(f"upgrade: draining {part.label}")
    cluster.front.reload_drained({part.index})
    log(f"upgrade: stopping {part.label} (pid {old_pid})")
    part.stop(timeout=cluster.settings.graceful_timeout + 10)
    part.up(log)  # the code and settings of now; waits for its health
    new_pid = int(cluster.pids[part.name][0])
    log(f"upgrade: {part.label} serving again (pid {new_pid})")
    cluster.front.reload_drained()
    return {"index": part.index + 1, "old_pid": old_pid, "new_pid": new_pid,
            "seconds": round(time.monotonic() - started, 2)}
