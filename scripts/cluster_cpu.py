#!/usr/bin/env python3
"""Where the CPU goes, per request, in a running ``bin/cluster`` (for docs/scaling.md).

    .venv/bin/python scripts/cluster_cpu.py [--dir DIR] [--scenarios widget,list,create]

For each scenario it runs wrk against the cluster's front for ``--duration`` seconds and reads
the CPU time (user + system, /proc) each part used meanwhile: nginx, the instances (gunicorn
masters and workers), PgBouncer, HAProxy, the leader's and the standby's PostgreSQL (every
process of each server), Patroni, etcd, and wrk itself. It prints requests/s and CPU
milliseconds per request per part: the capacity model's unit costs. It needs the bench user
and widgets that ``bin/bench --url`` seeds (run that once first).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from bench.common import EMAIL, PASSWORD  # noqa: E402
from widgetsvc.db import SQL_DIR, load_queries  # noqa: E402
from widgetsvc.ops import plumbing  # noqa: E402
from widgetsvc.ops.cluster.hacluster import HACluster  # noqa: E402
from widgetsvc.ops.cluster.state import APP_ROLE, NODES  # noqa: E402

BACKENDS = load_queries(SQL_DIR / "testing")["cluster_backends"]

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time (user + system) the live ones of ``pids`` used so far."""
    total = 0
    for pid in pids:
        fields = plumbing.stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def parts(cluster: HACluster) -> dict[str, list[int]]:
    """Live pids per part, now."""
    groups: dict[str, list[int]] = {}
    for name, record in cluster.pids.items():
        key = "instances" if name.startswith("instance-") else (
            "patroni" if name.startswith("patroni-") else name)
        groups.setdefault(key, []).extend(plumbing.group_members(int(record[0])))
    roles = {m["name"]: m.get("role") for m in cluster.members()}
    for node in NODES:
        pid = cluster.postmaster_pid(node)
        key = "postgres leader" if roles.get(node) == "leader" else "postgres standby"
        # The postmaster's children (backends, walsender, checkpointer ...), not its process
        # group: Patroni starts it from a helper that made the session and then exited.
        groups[key] = [pid, *plumbing.children(pid)] if pid else []
    return groups


class Sampler(threading.Thread):
    """The service's backends on the leader every 100 ms while wrk runs: how many exist, how
    many are busy, and what the busy ones wait for (lock, WAL flush, SyncRep ...)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.totals: list[int] = []
        self.active: list[int] = []
        self.waits: Counter = Counter()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(0.1):
                row = conn.execute(BACKENDS, {"role": APP_ROLE}).fetchone()
                self.totals.append(row[0])
                self.active.append(row[1])
                self.waits.update(w for w in row[2].split(",") if w)


def login(front: str) -> str:
    body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
    request = urllib.request.Request(  # noqa: S310 (http to the cluster's loopback front)
        f"{front}/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (loopback)
        return json.load(resp)["access_token"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir")
    parser.add_argument("--scenarios", default="user,widget,list,create")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--widgets", type=int, default=1000)
    args = parser.parse_args(argv)
    cluster = HACluster(Path(args.dir).resolve() if args.dir else None)
    front = cluster.front_url
    token = login(front)
    paths = {"user": ("/api/v1/auth/user", None), "widget": ("/", "widgets.lua"),
             "list": ("/api/v1/widgets?page=1&per_page=10", None),
             "create": ("/", "insert.lua")}
    print(f"instances={cluster.state['instances']} pgbouncer={cluster.state['pgbouncer']} "
          f"connections={args.connections} duration={args.duration}s cores={os.cpu_count()}")
    for scenario in args.scenarios.split(","):
        path, script = paths[scenario]
        cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
               "-H", f"Authorization: Bearer {token}"]
        if script:
            cmd += ["-s", str(REPO / "bench" / script)]
        cmd.append(f"http://127.0.0.1:{urlsplit(front).port}{path}")
        env = {**os.environ, "BENCH_TOKEN": token, "BENCH_WIDGETS": str(args.widgets),
               "BENCH_PREFIX": f"cpu-{uuid.uuid4().hex[:8]}"}
        before_parts = parts(cluster)
        before = {k: cpu_seconds(v) for k, v in before_parts.items()}
        child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        sampler = Sampler(cluster.leader_url("postgres", "widgetsvc"))
        sampler.start()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        sampler.stop.set()
        sampler.join(5)
        child_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        after = {k: cpu_seconds(v) for k, v in before_parts.items()}
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        costs = {k: 1000 * (after[k] - before[k]) / requests for k in before}
        client = ((child_after.ru_utime + child_after.ru_stime)
                  - (child_before.ru_utime + child_before.ru_stime))
        costs["wrk (client)"] = 1000 * client / requests
        total = sum(costs.values())
        print(f"\n{scenario}: {rps:.0f} req/s, {requests} requests, "
              f"non-2xx {bad.group(1) if bad else 0}; CPU ms per request (total {total:.2f}, "
              f"i.e. {1000 / total:.0f} req/s per core if nothing else ran):")
        for name, ms in sorted(costs.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<18} {ms:6.3f}")
        samples = max(1, len(sampler.active))
        print(f"  leader backends of the service: {max(sampler.totals, default=0)} open, "
              f"{sum(sampler.active) / samples:.1f} busy on average; busy ones waiting on: "
              + (", ".join(f"{w} {100 * n / max(1, sum(sampler.active)):.0f}%"
                           for w, n in sampler.waits.most_common(4)) or "nothing"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
