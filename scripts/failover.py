#!/usr/bin/env python3
"""Failure drills against a running ``bin/cluster`` (issue 12). Run through ``bin/failover``.

    bin/failover leader --trials 5     # kill -9 the leader's postmaster under 8 writing clients
    bin/failover instance              # kill -9 one instance's gunicorn master under a read load
    bin/failover standby               # lose the synchronous standby (Patroni and PostgreSQL)
    bin/failover writes                # no failure: widget creates/s that 8 clients get
    bin/failover upgrade               # bin/cluster upgrade under 8 reading/writing clients

Each prints one JSON object on stdout (the test suite reads it) and a summary on stderr, and
exits 1 when a promise is broken: an acknowledged widget missing afterwards, a revoked token
accepted again, a failed GET through the front, writes not back within the limit.

Writers each remember every widget name they got a 201 for; names are unique per attempt, so
a create that failed and one that succeeded never share a name. A write whose answer never came
(connection cut) is "uncertain": it may or may not exist, and is not counted as acknowledged.
Everything talks to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from widgetsvc.db import SQL_DIR, load_queries  # noqa: E402
from widgetsvc.ops import cmdline, plumbing  # noqa: E402
from widgetsvc.ops.cluster.hacluster import HACluster  # noqa: E402

API = "/api/v1"
PASSWORD = "Drill-pass-1"  # noqa: S105 (throwaway accounts of the drill)
QUERIES = load_queries(SQL_DIR / "testing")


def call(port: int, method: str, path: str, data: dict | None = None,
         token: str | None = None, timeout: float = 30.0) -> tuple[int, dict | None]:
    """One request on its own connection; status 0 = no answer (connection error/timeout)."""
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(data) if data is not None else None,
                     headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        conn.close()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return resp.status, body


def login(port: int, email: str) -> str:
    status, body = call(port, "POST", f"{API}/auth/login", {"email": email, "password": PASSWORD})
    if status != 200:
        raise SystemExit(f"failover: login of {email} answered {status} {body}")
    return body["access_token"]


def make_user(cluster: HACluster, port: int, *, admin: bool) -> tuple[str, str]:
    """Register a fresh user through the front (promoted in the database if ``admin``)."""
    email = f"drill-{uuid.uuid4().hex[:10]}@example.com"
    status, body = call(port, "POST", f"{API}/auth/register",
                        {"email": email, "password": PASSWORD})
    if status != 201:
        raise SystemExit(f"failover: register answered {status} {body}")
    if admin:
        with psycopg.connect(cluster.leader_url(), autocommit=True) as conn:
            conn.execute(QUERIES["cluster_set_admin"], {"admin": True, "email": email})
    return email, login(port, email)


@dataclass
class Attempt:
    started: float
    ended: float
    status: int
    name: str


@dataclass
class Writers:
    """``clients`` threads creating widgets through the front as fast as they are answered."""

    port: int
    token: str
    clients: int = 8
    prefix: str = field(default_factory=lambda: f"fo{uuid.uuid4().hex[:8]}")
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(self.clients)]
        self.deadline = (date.today() + timedelta(days=30)).isoformat()

    def _run(self, client: int) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            name = f"{self.prefix}-{client}-{number}"
            started = time.monotonic()
            status, _ = call(self.port, "POST", f"{API}/widgets", {
                "name": name, "info_url": "https://example.com", "deadline": self.deadline,
            }, token=self.token, timeout=30)
            with self._lock:
                self.attempts.append(Attempt(started, time.monotonic(), status, name))
            if status != 201:
                time.sleep(0.05)  # a failing cluster is not hammered in a tight loop

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    @property
    def acknowledged(self) -> list[str]:
        return [a.name for a in self.snapshot() if a.status == 201]


def missing_widgets(cluster: HACluster, names: list[str]) -> list[str]:
    with psycopg.connect(cluster.leader_url(), autocommit=True) as conn:
        present = {row[0] for row in conn.execute(QUERIES["cluster_widgets_present"],
                                                  {"names": names})}
    return sorted(set(names) - present)


def replicated(cluster: HACluster) -> bool:
    """A leader and a synchronous standby, both running: the next failover loses nothing."""
    members = cluster.members()
    return (sorted(m.get("role") for m in members) == ["leader", "sync_standby"]
            and all(m.get("state") in ("running", "streaming") for m in members))


def role_of(cluster: HACluster, name: str) -> str | None:
    return next((m.get("role") for m in cluster.members()
                 if m["name"] == name and m.get("state") in ("running", "streaming")), None)


def front_port(cluster: HACluster) -> int:
    return urlsplit(cluster.front_url).port


# -- the leader ------------------------------------------------------------------------------
def leader_trial(cluster: HACluster, port: int, admin_token: str, clients: int,
                 limit: float) -> dict:
    if not plumbing.poll(lambda: replicated(cluster), timeout=120):
        raise SystemExit("failover: the cluster has no synchronous standby to fail over to")
    _, user_token = make_user(cluster, port, admin=False)
    leader = next(p for p in cluster.status()["postgres"] if p["role"] == "leader")
    with Writers(port, admin_token, clients) as writers:
        time.sleep(1.5)
        # Revoked before the kill: must stay revoked on the new leader.
        status, _ = call(port, "POST", f"{API}/auth/logout", token=user_token)
        if status != 200:
            raise SystemExit(f"failover: logout answered {status}")
        killed_at = time.monotonic()
        os.kill(leader["postmaster_pid"], signal.SIGKILL)

        def first_write_after_kill() -> Attempt | None:
            return next((a for a in writers.snapshot()
                         if a.started > killed_at and a.status == 201), None)

        # The attempts only grow: once one is there, the same one is found again.
        back = (first_write_after_kill() if plumbing.poll(
            first_write_after_kill, timeout=limit + 30, interval=0.05) else None)
        time.sleep(2.0)  # and keep writing on the new leader for a while
    attempts = writers.snapshot()
    acknowledged = [a.name for a in attempts if a.status == 201]
    failed = Counter(str(a.status) for a in attempts if a.status != 201)
    status, body = call(port, "GET", f"{API}/auth/user", token=user_token)
    revoked_ok = status == 401 and "blacklisted" in (body or {}).get("message", "")
    # The role it came back in, as first seen: Patroni may restart the rejoined PostgreSQL
    # once more right after (its state "starting" for a moment), which a later look would
    # take for a node that never came back (a flaky CI run did).
    seen: list[str] = []

    def back_as_replica() -> bool:
        role = role_of(cluster, leader["name"])
        if role in ("replica", "sync_standby"):
            seen.append(role)
        return bool(seen)

    rejoined = plumbing.poll(back_as_replica, timeout=120, interval=0.5)
    rejoin_s = time.monotonic() - killed_at if rejoined else None
    new_leader = next((p["name"] for p in cluster.status()["postgres"]
                       if p["role"] == "leader"), None)
    return {
        "killed": leader["name"], "new_leader": new_leader,
        "writes_back_s": round(back.ended - killed_at, 2) if back else None,
        "acknowledged": len(acknowledged), "lost": len(missing_widgets(cluster, acknowledged)),
        "failed_writes": dict(failed), "revoked_token_still_revoked": revoked_ok,
        "old_leader_role": seen[0] if seen else role_of(cluster, leader["name"]),
        "rejoined_s": round(rejoin_s, 1) if rejoin_s else None,
    }


def drill_leader(cluster: HACluster, trials: int, clients: int, limit: float) -> dict:
    port = front_port(cluster)
    _, admin_token = make_user(cluster, port, admin=True)
    results = []
    for number in range(1, trials + 1):
        result = leader_trial(cluster, port, admin_token, clients, limit)
        print(f"trial {number}: {json.dumps(result)}", file=sys.stderr, flush=True)
        results.append(result)
        if number < trials:  # tokens live 15 min by default; a drill is shorter, but be safe
            admin_token = login_admin_again(cluster, port, admin_token)
    times = [r["writes_back_s"] for r in results if r["writes_back_s"] is not None]
    summary = {
        "trials": results,
        "writes_back_s": ({"min": min(times), "median": round(statistics.median(times), 2),
                           "max": max(times)} if times else None),
        "lost": sum(r["lost"] for r in results),
        "acknowledged": sum(r["acknowledged"] for r in results),
        "failed_writes": sum(sum(r["failed_writes"].values()) for r in results),
    }
    summary["ok"] = (len(times) == trials and max(times) <= limit and summary["lost"] == 0
                     and all(r["revoked_token_still_revoked"] for r in results)
                     and all(r["old_leader_role"] in ("replica", "sync_standby")
                             for r in results))
    return summary


def login_admin_again(cluster: HACluster, port: int, token: str) -> str:
    status, body = call(port, "GET", f"{API}/auth/user", token=token)
    return login(port, body["email"]) if status == 200 else token


# -- an instance -----------------------------------------------------------------------------
def drill_instance(cluster: HACluster, seconds: float) -> dict:
    """kill -9 one instance's gunicorn master while 6 readers and 2 writers run; every GET
    must succeed (nginx passes a failed GET to the other instance)."""
    port = front_port(cluster)
    _, admin_token = make_user(cluster, port, admin=True)
    name = f"read-{uuid.uuid4().hex[:8]}"
    deadline = (date.today() + timedelta(days=30)).isoformat()
    status, _ = call(port, "POST", f"{API}/widgets", {
        "name": name, "info_url": "https://example.com", "deadline": deadline},
        token=admin_token)
    assert status == 201, status
    stop = threading.Event()
    reads: Counter = Counter()
    lock = threading.Lock()

    def reader(n: int) -> None:
        paths = [f"{API}/widgets/{name}", f"{API}/widgets?page=1&per_page=5", f"{API}/auth/user"]
        i = n
        while not stop.is_set():
            status, _ = call(port, "GET", paths[i % 3], token=admin_token, timeout=30)
            i += 1
            with lock:
                reads[str(status)] += 1

    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(6)]
    with Writers(port, admin_token, clients=2) as writers:
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        victim = cluster.status()["instances"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(60)
    attempts = writers.snapshot()
    acknowledged = [a.name for a in attempts if a.status == 201]
    failed_writes = Counter(str(a.status) for a in attempts if a.status != 201)
    after = [a for a in attempts if a.started > killed_at]
    result = {
        "killed_pid": victim["pid"], "reads": dict(reads),
        "failed_reads": sum(v for k, v in reads.items() if k != "200"),
        "writes": len(attempts), "writes_after_kill": len(after),
        "failed_writes": dict(failed_writes),
        "acknowledged": len(acknowledged), "lost": len(missing_widgets(cluster, acknowledged)),
    }
    result["ok"] = result["failed_reads"] == 0 and result["lost"] == 0
    return result


# -- the standby -----------------------------------------------------------------------------
def drill_standby(cluster: HACluster, seconds: float, limit: float) -> dict:
    """Kill the synchronous standby's Patroni and PostgreSQL (its server is gone): writes go on
    once the leader stops waiting for it, with nothing to fail over to meanwhile."""
    port = front_port(cluster)
    if not plumbing.poll(lambda: replicated(cluster), timeout=120):
        raise SystemExit("failover: no synchronous standby to lose")
    _, admin_token = make_user(cluster, port, admin=True)
    standby = next(p for p in cluster.status()["postgres"] if p["role"] == "sync_standby")
    with Writers(port, admin_token, clients=4) as writers:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(standby["patroni_pid"], signal.SIGKILL)
        os.kill(standby["postmaster_pid"], signal.SIGKILL)

        def write_after() -> Attempt | None:
            return next((a for a in writers.snapshot()
                         if a.started > killed_at + 0.5 and a.status == 201), None)

        back = (write_after() if plumbing.poll(write_after, timeout=limit + 30, interval=0.05)
                else None)
        time.sleep(seconds)
        with psycopg.connect(cluster.leader_url("postgres", "postgres"), autocommit=True) as c:
            sync_names = c.execute("SHOW synchronous_standby_names").fetchone()[0]
    attempts = writers.snapshot()
    acknowledged = [a.name for a in attempts if a.status == 201]
    result = {
        "killed": standby["name"],
        "writes_go_on_s": round(back.ended - killed_at, 2) if back else None,
        "writes_after_kill": sum(1 for a in attempts if a.started > killed_at),
        "acknowledged_after_kill": sum(1 for a in attempts
                                       if a.started > killed_at and a.status == 201),
        "failed_writes": dict(Counter(str(a.status) for a in attempts if a.status != 201)),
        "synchronous_standby_names_meanwhile": sync_names,
        "lost": len(missing_widgets(cluster, acknowledged)),
    }
    result["ok"] = (result["writes_go_on_s"] is not None and result["writes_go_on_s"] <= limit
                    and result["lost"] == 0)
    return result


# -- write throughput (no failure) ---------------------------------------------------------------
def measure_writes(cluster: HACluster, clients: int, seconds: float) -> dict:
    """Widget creates per second through the front, ``clients`` at once, nothing killed: what
    the leader's synchronous commits sustain on this machine."""
    port = front_port(cluster)
    _, admin_token = make_user(cluster, port, admin=True)
    with Writers(port, admin_token, clients) as writers:
        time.sleep(1.0)  # warm-up, not counted
        begin = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
    counted = [a for a in writers.snapshot() if a.started >= begin and a.ended <= end]
    ok = [a for a in counted if a.status == 201]
    latencies = sorted(a.ended - a.started for a in ok)
    return {
        "clients": clients, "seconds": seconds,
        "writes_per_s": round(len(ok) / (end - begin), 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
        "failed": len(counted) - len(ok), "ok": bool(ok) and len(counted) == len(ok),
    }


# -- a rolling upgrade ------------------------------------------------------------------------
def drill_upgrade(cluster: HACluster, clients: int, settle: float) -> dict:
    """``bin/cluster upgrade`` while ``clients`` clients each create a widget, read it back and
    list widgets through the front, each request on its own connection. Every answer must be
    the expected one (no 5xx, no connection error), every acknowledged widget must be there
    afterwards, and every instance must have been replaced."""
    port = front_port(cluster)
    _, token = make_user(cluster, port, admin=True)
    deadline = (date.today() + timedelta(days=30)).isoformat()
    prefix = f"up{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    lock = threading.Lock()
    answers: Counter = Counter()  # "METHOD status" -> count
    failures: list[str] = []
    acknowledged: list[str] = []

    def client(n: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            name = f"{prefix}-{n}-{number}"
            steps = [("POST", f"{API}/widgets", {"name": name, "info_url": "https://example.com",
                                                   "deadline": deadline}, 201),
                     ("GET", f"{API}/widgets/{name}", None, 200),
                     ("GET", f"{API}/widgets?page=1&per_page=5", None, 200)]
            for method, path, data, expected in steps:
                status, _ = call(port, method, path, data, token=token, timeout=60)
                with lock:
                    answers[f"{method} {status}"] += 1
                    if status == 201:
                        acknowledged.append(name)
                    if status != expected:
                        failures.append(f"{method} {path}: {status}")
                if status != expected:
                    break  # a failed create has nothing to read back

    before = [i["pid"] for i in cluster.status()["instances"]]
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(settle)
    with lock:
        until_upgrade = sum(answers.values())
    started = time.monotonic()
    upgrade = subprocess.run([str(REPO / "bin" / "cluster"), "--dir", str(cluster.root),
                              "upgrade"], capture_output=True, text=True, timeout=900,
                             stdin=subprocess.DEVNULL, check=False)
    seconds = time.monotonic() - started
    with lock:
        during = sum(answers.values()) - until_upgrade
    time.sleep(settle)
    stop.set()
    for thread in threads:
        thread.join(90)
    after = [i["pid"] for i in HACluster(cluster.root).status()["instances"]]
    with lock:
        names = list(acknowledged)
        result = {
            "upgrade_exit": upgrade.returncode, "upgrade_s": round(seconds, 2),
            "requests": sum(answers.values()), "answers": dict(answers),
            "failed": len(failures), "failures": failures[:20],
            "acknowledged": len(names), "lost": len(missing_widgets(cluster, names)),
            "pids_before": before, "pids_after": after,
        }
    result["requests_during_upgrade"] = during
    if upgrade.returncode != 0:
        result["upgrade_log"] = upgrade.stderr[-3000:]
    result["ok"] = (upgrade.returncode == 0 and result["failed"] == 0 and result["lost"] == 0
                    and result["acknowledged"] > 0 and all(after)
                    and not set(before) & set(after))
    return result


def restart(cluster_dir: Path) -> None:
    """``bin/cluster up`` again: starts whatever part is not running."""
    subprocess.run([str(REPO / "bin" / "cluster"), "--dir", str(cluster_dir), "up"],
                   check=True, stdout=subprocess.DEVNULL, timeout=300)


def main(argv: list[str] | None = None) -> int:
    doc = __doc__.split("\n", 1)
    parser = cmdline.Parser(
        "bin/failover", "Failure drills against a running bin/cluster: kill -9 a part under load, "
        "then check that nothing acknowledged was lost.", details=doc[1],
        environment=[("WIDGETSVC_CLUSTER_DIR", "the cluster's directory (var/cluster; --dir wins)"),
                     ("WIDGETSVC_PG_OS_USER", "as root: the user that runs its parts")],
        exit_codes=[(0, "every promise kept"), (1, "a promise broken (the summary says which)"),
                    (3, "no cluster here: run bin/cluster up first")])
    parser.add_argument("--dir", help="the cluster's directory (as bin/cluster --dir)")
    parser.add_argument("--limit", type=float, default=15.0,
                        help="seconds within which writes must succeed again (default 15)")
    sub = parser.add_commands(dest="drill")
    leader = sub.add_parser("leader", help="kill -9 the leader's postmaster under writers")
    leader.add_argument("--trials", type=int, default=5)
    leader.add_argument("--clients", type=int, default=8)
    instance = sub.add_parser("instance", help="kill -9 an instance's gunicorn under reads")
    instance.add_argument("--seconds", type=float, default=5.0)
    standby = sub.add_parser("standby", help="lose the synchronous standby under writes")
    standby.add_argument("--seconds", type=float, default=2.0)
    writes = sub.add_parser("writes", help="measure widget creates/s (nothing is killed)")
    writes.add_argument("--clients", type=int, default=8)
    writes.add_argument("--seconds", type=float, default=10.0)
    upgrade = sub.add_parser("upgrade", help="bin/cluster upgrade under clients reading and "
                                             "writing: no request may fail")
    upgrade.add_argument("--clients", type=int, default=8)
    upgrade.add_argument("--settle", type=float, default=2.0,
                         help="seconds of load before and after the upgrade (default 2)")
    for drill in (instance, standby):
        drill.add_argument("--no-restart", action="store_true",
                           help="leave the killed part down (default: bin/cluster up again)")
    args = parser.parse_args(argv)

    cluster = HACluster(Path(args.dir).resolve() if args.dir else None)
    if not cluster.exists:
        print("failover: no cluster; run bin/cluster up first", file=sys.stderr)
        return 3
    if args.drill == "leader":
        result = drill_leader(cluster, args.trials, args.clients, args.limit)
        times = result["writes_back_s"]
        if times:
            print(f"writes back after kill -9 of the leader: min {times['min']} s, median "
                  f"{times['median']} s, max {times['max']} s over {args.trials} trials; "
                  f"acknowledged {result['acknowledged']}, lost {result['lost']}, failed "
                  f"writes {result['failed_writes']}", file=sys.stderr)
    elif args.drill == "instance":
        result = drill_instance(cluster, args.seconds)
        print(f"instance killed: failed GETs {result['failed_reads']} of "
              f"{sum(result['reads'].values())}; writes failed {result['failed_writes']} of "
              f"{result['writes']}; lost {result['lost']}", file=sys.stderr)
    elif args.drill == "upgrade":
        result = drill_upgrade(cluster, args.clients, args.settle)
        print(f"upgrade under {args.clients} clients: {result['upgrade_s']} s, "
              f"{result['requests']} requests ({result['requests_during_upgrade']} while it "
              f"ran), failed {result['failed']}, acknowledged writes "
              f"{result['acknowledged']}, lost {result['lost']}", file=sys.stderr)
    elif args.drill == "writes":
        result = measure_writes(cluster, args.clients, args.seconds)
        print(f"writes: {result['writes_per_s']}/s with {args.clients} clients, p50 "
              f"{result['p50_ms']} ms, p99 {result['p99_ms']} ms", file=sys.stderr)
    else:
        result = drill_standby(cluster, args.seconds, args.limit)
        print(f"standby lost: writes went on after {result['writes_go_on_s']} s; failed "
              f"{result['failed_writes']}; lost {result['lost']}", file=sys.stderr)
    if args.drill in ("instance", "standby") and not args.no_restart:
        restart(cluster.root)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
