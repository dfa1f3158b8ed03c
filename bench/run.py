"""bin/bench: the service against a plain Falcon "hello" floor, served the same way.

Brings up its own PostgreSQL cluster (var/bench-<pid>), seeds it with SQL, starts the service
and the floor each with ``bin/serve`` (so both sit behind the same nginx front and gunicorn
settings; ``--direct`` serves both from gunicorn alone), then runs wrk against each scenario
and the floor in alternation for several rounds and prints medians, each judged against the
performance targets. Everything runs on 127.0.0.1 and stops by itself.

``--servers gunicorn,granian`` (issue 25) compares the two WSGI servers instead: the same
service (and the floor, as the scenario "hello") under each, both through the same front,
the two runs of every scenario back to back in each round, and reports each scenario's req/s
and p99 under both with their ratios, judged against the acceptance: Granian at least
``SERVER_TARGETS`` times gunicorn's rate (no worse elsewhere), its p99 at most
``SERVER_P99`` times gunicorn's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import floor as write_floor  # noqa: E402
from bench.common import EMAIL, PASSWORD, wait_ready  # noqa: E402
from bench.seed import fresh_refresh_tokens, seed_existing, seeded_database  # noqa: E402
from widgetsvc import config, paging  # noqa: E402
from widgetsvc.auth import keys  # noqa: E402
from widgetsvc.auth.passwords import check_password, hash_password  # noqa: E402
from widgetsvc.ops import cmdline, plumbing  # noqa: E402
from widgetsvc.ops.localdb import VAR_DIR, PrivatePostgres  # noqa: E402

SCENARIOS = ("user", "widget", "list", "list-deep", "create", "update", "login", "mixed",
             "refresh", "write-floor", "create-floor", "replay", "cursor", "cursor-deep",
             "cursor-filtered")
# Asked for by name only: "widget" against a second service without metrics (METRICS_PORT=0),
# the pair that measures the metrics' cost on the read path (docs/operations.md).
OPTIONAL = ("widget-nometrics",)
METRICS_OVERHEAD = 0.03
REPLAY_SHARE = 0.9  # an Idempotency-Key replay (one statement, no write) against `widget`
# The pgbench write floors (bench/floor.py), and the share of them each write must reach.
WRITE_FLOORS = {"update": "write-floor", "create": "create-floor"}
WRITE_FLOOR_SHARE = 0.70
# Cursor pages (docs/API.md §8.7): page 1, a page ~89 % deep in name order ("widget-9" sorts
# after every seeded name starting with widget-1 .. widget-8), and a filtered + sorted page.
# Each is judged against list's rate at 1,000 widgets in the same run (list itself at 1,000).
CURSOR_SCENARIOS = ("cursor", "cursor-deep", "cursor-filtered")
CURSOR_KEEPS = 0.95
CURSOR_PATHS = {
    "cursor": "/api/v1/widgets?per_page=10&cursor=&sort=name",
    "cursor-filtered": "/api/v1/widgets?per_page=10&cursor=&sort=-deadline&passed=false"
                       "&name_prefix=widget-1",
}
# After the rounds, at LARGE widgets and more with "cursor" asked for: every cursor page of the
# collection in name order, then every service worker's RSS, which must stay under WALK_RSS_MB.
WALK_PER_PAGE = 100
WALK_RSS_MB = 80.0
# The performance targets, as ratios to the floor measured in the same run.
TARGETS = {"user": 0.52, "widget": 0.50, "list": 0.42, "list-deep": 0.38,
           "update": 0.30, "create": 0.25}
LARGE = 100_000  # from this many widgets on, list is judged against its 1,000-widget rate
LARGE_TARGETS = {"list-deep": 0.30}
LIST_KEEPS = 0.9  # share of its 1,000-widget rate that list keeps at a large collection
SMALL = 1000
MIXED_P99_MS = 50.0
LOGIN_SHARE = 0.90  # of two cores doing nothing but bcrypt
SERVERS = ("gunicorn", "granian")
SERVER_TARGETS = {"user": 1.3, "widget": 1.3}  # Granian / gunicorn req/s; others: >= 1.0
SERVER_P99 = 1.25  # Granian's p99 at most this times gunicorn's


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Tally:
    runs: list[Result] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs) if self.runs else 0.0

    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


@dataclass
class Row:
    """One line of the report: a scenario's medians, its ratio and its verdict."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    ratio: float
    target: str
    met: bool | None  # None: not judged in this run


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("bench: wrk is not installed; run 'sudo apt-get install wrk'")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("bench: could not install wrk")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     output)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    return Result(rps, p50, p99, errors)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.wrk = ensure_wrk()
        self.cluster = PrivatePostgres(VAR_DIR / f"bench-{os.getpid()}")
        self.procs: list[subprocess.Popen] = []
        self.run_id = secrets.token_hex(4)
        self.env = {
            **os.environ,
            # Production settings, unless a quick run asks for a cheaper bcrypt cost.
            "WIDGETSVC_ENV": "production" if args.bcrypt_rounds >= 12 else "test",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "BCRYPT_ROUNDS": str(args.bcrypt_rounds),
            "LOG_LEVEL": "INFO",  # the request log is part of the cost measured
            "HOST": "127.0.0.1",
            # The login scenarios measure bcrypt throughput, not the per-address limit nor
            # the hashing slots: the login scenario's 4 connections may all hash at once.
            "AUTH_RATE_LIMIT": "0",
            "HASH_SLOTS": os.environ.get("HASH_SLOTS", "4"),
            "AUTH_IN_FLIGHT": os.environ.get("AUTH_IN_FLIGHT", "0"),
        }
        self.small_port: int | None = None
        self.nometrics_port: int | None = None

    # -- set-up -------------------------------------------------------------------------
    def setup(self) -> None:
        if self.args.url:  # a running service (bin/cluster's front): seed its database
            seed_existing(os.environ["DATABASE_URL"], widgets=self.args.widgets, email=EMAIL,
                          password=PASSWORD, bcrypt_rounds=self.args.bcrypt_rounds)
            self.service_port = urllib.parse.urlsplit(self.args.url).port
            self.floor_port = self._serve(os.environ["DATABASE_URL"], app="bench.hello:app",
                                          ready="/hello")
            self.token = self._login(self.service_port)
            return
        self.cluster.start()
        self.group_commit()
        url, self.user = seeded_database(
            self.cluster, widgets=self.args.widgets, email=EMAIL, password=PASSWORD,
            bcrypt_rounds=self.args.bcrypt_rounds, admin=True, dbname="bench")
        self.db_url = url  # the refresh scenario makes fresh sessions in it
        self.service_port = self._serve(url)
        self.service_proc = self.procs[-1]
        self.floor_port = self._serve(url, app="bench.hello:app", ready="/hello")
        self.token = self._login(self.service_port)
        if "widget-nometrics" in self.args.names:
            self.nometrics_port = self._serve(url, metrics=False)
        if self.judges_list_at_small():
            # List at a large collection is judged against its own rate at a small one,
            # measured in this same run by a second service on a small database.
            small_url, _ = seeded_database(
                self.cluster, widgets=SMALL, email=EMAIL, password=PASSWORD,
                bcrypt_rounds=self.args.bcrypt_rounds, admin=True, dbname="bench_small")
            self.small_port = self._serve(small_url)
            self.small_token = self._login(self.small_port)

    def group_commit(self) -> None:
        """--commit-delay / --commit-siblings: PostgreSQL's group commit for the whole bench
        cluster (service and pgbench alike), to measure what it buys the writes."""
        settings = {"commit_delay": self.args.commit_delay,
                    "commit_siblings": self.args.commit_siblings}
        for name, value in settings.items():
            if value is not None:
                self.cluster._run("psql", *self.cluster._client_args(), "-d", "postgres",
                                  "-c", f"ALTER SYSTEM SET {name} = {int(value)}")
        if any(value is not None for value in settings.values()):
            self.cluster._run("psql", *self.cluster._client_args(), "-d", "postgres",
                              "-c", "SELECT pg_reload_conf()")

    def judges_list_at_small(self) -> bool:
        wanted = {"list", *CURSOR_SCENARIOS} & set(self.args.names)
        return self.args.widgets >= LARGE and bool(wanted) and not self.args.url

    def deep_cursor_path(self) -> str:
        """A cursor page ~89 % deep in name order, its cursor made with the service's key."""
        if "SECRET_KEY" not in self.env:
            raise SystemExit("bench: cursor-deep runs against its own service only")
        cursor = paging.encode_cursor(keys.cursor_keys_from_secrets(self.env["SECRET_KEY"]),
                                      paging.cursor_kind("name"), "&sort=name",
                                      paging.Position(0, 0, "widget-9"))
        return f"/api/v1/widgets?per_page=10&cursor={cursor}&sort=name"

    def walks_cursors(self) -> bool:
        return self.args.widgets >= LARGE and "cursor" in self.args.names and not self.args.url

    def walk_cursors(self) -> bool:
        """Every cursor page in name order, one after the other (each page's next_cursor),
        checking that every widget comes once and in order; then each worker's RSS. True when
        every worker stays under WALK_RSS_MB."""
        from bench.memory import Client, gunicorn_workers

        client = Client(self.service_port)
        path = f"/api/v1/widgets?per_page={WALK_PER_PAGE}&cursor=&sort=name"
        pages = items = longest = 0
        last = ""
        started = time.monotonic()
        while path:
            status, raw = client.get(path, self.token)
            if status != 200:
                raise SystemExit(f"bench: cursor walk: page {pages + 1}: {status}")
            body = json.loads(raw)
            names = [item["name"] for item in body["items"]]
            if names and (names[0] <= last or names != sorted(set(names))):
                raise SystemExit(f"bench: cursor walk: page {pages + 1} out of order")
            last = names[-1] if names else last
            items += len(names)
            pages += 1
            longest = max(longest, len(body["next_cursor"] or ""))
            path = body["links"].get("next")
            if pages % 10_000 == 0:
                print(f"cursor walk: {items:,}/{self.args.widgets:,} widgets "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        seconds = time.monotonic() - started
        workers = gunicorn_workers(self.service_proc.pid)
        worst = max(workers.values(), default=0.0)
        rss = ", ".join(f"{mb:.1f}" for _pid, mb in sorted(workers.items()))
        met = items == self.args.widgets and 0 < worst < WALK_RSS_MB
        print(f"\ncursor walk: {items:,} widgets in {pages:,} pages of {WALK_PER_PAGE} "
              f"({seconds:.0f} s, {pages / seconds:.0f} pages/s, longest cursor {longest} "
              f"characters); worker RSS MB after it: {rss} (max {worst:.1f}; target < "
              f"{WALK_RSS_MB:.0f}, every widget once){'  met' if met else '  MISSED'}")
        return met

    def setup_servers(self) -> None:
        """--servers: the service and the floor under each server, one database."""
        self.cluster.start()
        url, self.user = seeded_database(
            self.cluster, widgets=self.args.widgets, email=EMAIL, password=PASSWORD,
            bcrypt_rounds=self.args.bcrypt_rounds, admin=True, dbname="bench")
        self.db_url = url
        self.ports = {server: (self._serve(url, server=server),
                               self._serve(url, app="bench.hello:app", ready="/hello",
                                           server=server))
                      for server in self.args.server_list}
        self.use(self.args.server_list[0])
        self.token = self._login(self.service_port)

    def use(self, server: str) -> None:
        """Point the scenarios at ``server``'s service and floor."""
        self.service_port, self.floor_port = self.ports[server]

    def _serve(self, database_url: str, app: str | None = None,
               ready: str = "/api/v1/health", metrics: bool = True,
               server: str | None = None) -> int:
        port = plumbing.free_port()
        # Each server its own metrics listener (they would all want 9464), or none.
        metrics_port = str(plumbing.free_port()) if metrics else "0"
        cmd = [str(REPO / "bin" / "serve"), "--no-migrate"]
        if server:
            cmd += ["--server", server]
        if self.args.direct:
            cmd.append("--direct")
        if app:
            cmd.append(app)
        proc = subprocess.Popen(
            cmd, cwd=REPO, env={**self.env, "DATABASE_URL": database_url, "PORT": str(port),
                                "METRICS_PORT": metrics_port},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=None if self.args.verbose else subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        wait_ready(port, ready, proc)
        return port

    def _login(self, port: int) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            data=json.dumps({"email": EMAIL, "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (http to 127.0.0.1)
            return json.load(resp)["access_token"]

    def teardown(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not self.args.url:
            self.cluster.destroy()

    # -- load ---------------------------------------------------------------------------
    def run_wrk(self, port: int, path: str, *, connections: int, script: str | None = None,
                token: str | None = None, env: dict[str, str] | None = None) -> Result:
        token = token or self.token
        cmd = [self.wrk, "-t1", f"-c{connections}", f"-d{self.args.duration}s",
               "--latency", "--timeout", "10s", "-H", f"Authorization: Bearer {token}"]
        if script:
            cmd += ["-s", str(REPO / "bench" / script)]
        cmd.append(f"http://127.0.0.1:{port}{path}")
        env = {**os.environ, "BENCH_WIDGETS": str(self.args.widgets), "BENCH_TOKEN": token,
               "BENCH_EMAIL": EMAIL, "BENCH_PASSWORD": PASSWORD,
               "BENCH_RUN": f"{self.run_id}-{time.monotonic_ns()}", **(env or {})}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        return parse_wrk(out)

    def deep_page(self) -> int:
        pages = -(-self.args.widgets // 10)
        return max(1, int(pages * 0.9))

    def scenario(self, name: str) -> Result:
        c = self.args.connections
        port = self.service_port
        if name == "user":
            return self.run_wrk(port, "/api/v1/auth/user", connections=c)
        if name == "widget":
            return self.run_wrk(port, "/", connections=c, script="widgets.lua")
        if name == "widget-nometrics":
            return self.run_wrk(self.nometrics_port, "/", connections=c, script="widgets.lua")
        if name == "list":
            return self.run_wrk(port, "/api/v1/widgets?page=1&per_page=10", connections=c)
        if name == "list@1k":
            return self.run_wrk(self.small_port, "/api/v1/widgets?page=1&per_page=10",
                                connections=c, token=self.small_token)
        if name == "list-deep":
            return self.run_wrk(
                port, f"/api/v1/widgets?page={self.deep_page()}&per_page=10", connections=c)
        if name in CURSOR_PATHS:
            return self.run_wrk(port, CURSOR_PATHS[name], connections=c)
        if name == "cursor-deep":
            return self.run_wrk(port, self.deep_cursor_path(), connections=c)
        if name == "create":
            return self.run_wrk(port, "/", connections=c, script="create.lua")
        if name == "update":
            return self.run_wrk(port, "/", connections=c, script="update.lua")
        if name == "replay":
            # The first request with the key is made here, so that every request of the run
            # is a replay (concurrent firsts would be the in-flight 409s).
            run = f"{self.run_id}-{time.monotonic_ns()}"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/widgets", method="POST",
                data=json.dumps({"name": f"replay-{run}", "info_url": "https://www.example.com/r",
                                 "deadline": "2099-12-31"}).encode(),
                headers={"Content-Type": "application/json", "Idempotency-Key": f"bench-{run}",
                         "Authorization": f"Bearer {self.token}"})
            with urllib.request.urlopen(request, timeout=30):  # noqa: S310 (http to 127.0.0.1)
                pass
            return self.run_wrk(port, "/", connections=c, script="replay.lua",
                                env={"BENCH_RUN": run})
        if name == "login":
            return self.run_wrk(port, "/api/v1/auth/login", connections=self.args.login_connections,
                                script="login.lua")
        if name == "mixed":
            login_result: list[Result] = []
            logins = threading.Thread(target=lambda: login_result.append(self.run_wrk(
                port, "/api/v1/auth/login", connections=2, script="login.lua")))
            logins.start()
            reads = self.run_wrk(port, "/", connections=max(1, c // 2), script="widgets.lua")
            logins.join()
            reads.errors += login_result[0].errors if login_result else 1
            return reads
        if name in ("write-floor", "create-floor"):
            if self.args.url:
                raise SystemExit("bench: the write floors run against its own service only")
            body = write_floor.scripts(self.token, self.args.widgets, self.run_id)[
                "update" if name == "write-floor" else "create"]
            rate, latency = write_floor.run(
                self.db_url, body, clients=write_floor.concurrency(self.env),
                seconds=self.args.duration)
            return Result(rate, latency, latency, 0)
        if name == "refresh":
            # Fresh sessions for each run, whose chains of refresh tokens the connections
            # follow (bench/refresh.lua). Twice as many as connections: wrk calls request()
            # once before the run to check the script, which takes a token from the queue.
            if self.args.url:
                raise SystemExit("bench: the refresh scenario runs against its own service only")
            tokens = fresh_refresh_tokens(self.db_url, self.user.id, 2 * c,
                                          self.env["SECRET_KEY"])
            return self.run_wrk(port, "/api/v1/auth/refresh", connections=c,
                                script="refresh.lua",
                                env={"BENCH_REFRESH_TOKENS": ",".join(tokens)})
        raise ValueError(name)

    def floor(self) -> Result:
        return self.run_wrk(self.floor_port, "/hello", connections=self.args.connections)


def bcrypt_check_seconds(rounds: int) -> float:
    stored = hash_password(PASSWORD, rounds)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        check_password(PASSWORD, stored)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def judge(args: argparse.Namespace, tallies: dict[str, Tally], floor: Tally) -> list[Row]:
    """Every scenario's row with its target: ratios to the floor of the same run."""
    floor_rps = floor.median("rps")
    large = args.widgets >= LARGE
    login_ideal = 2 / bcrypt_check_seconds(args.bcrypt_rounds)
    rows = [Row("hello", floor_rps, floor.median("p50_ms"), floor.median("p99_ms"),
                floor.errors(), 1.0, "(floor)", None)]
    for name, tally in tallies.items():
        rps, p99 = tally.median("rps"), tally.median("p99_ms")
        ratio = rps / floor_rps if floor_rps else 0.0
        targets = {**TARGETS, **LARGE_TARGETS} if large else TARGETS
        if name == "list" and large:
            small = tallies["list@1k"].median("rps")
            ratio = rps / small if small else 0.0
            target, met = f">= {LIST_KEEPS:.2f} of list@1k (ratio: vs list@1k)", ratio >= LIST_KEEPS
        elif name == "widget-nometrics":
            # ratio: widget (metrics on) over this (off), interleaved in the same rounds
            ratio = tallies["widget"].median("rps") / rps if "widget" in tallies and rps else 0.0
            target = f"metrics cost: widget >= {1 - METRICS_OVERHEAD:.2f} of this (ratio)"
            met = ratio >= 1 - METRICS_OVERHEAD
        elif name in CURSOR_SCENARIOS:
            reference = tallies.get("list@1k" if large else "list")
            small = reference.median("rps") if reference else 0.0
            ratio = rps / small if small else 0.0
            target = f">= {CURSOR_KEEPS:.2f} of list at {SMALL:,} (ratio: vs that)"
            met = ratio >= CURSOR_KEEPS if reference else None
        elif name == "list@1k":
            target, met = f"list's rate at {SMALL:,} widgets, same run", None
        elif name in WRITE_FLOORS and WRITE_FLOORS[name] in tallies:
            pg = tallies[WRITE_FLOORS[name]].median("rps")
            share = rps / pg if pg else 0.0
            target = (f">= {targets[name]:.2f} of floor, >= {WRITE_FLOOR_SHARE:.2f} of "
                      f"{WRITE_FLOORS[name]}: {share:.2f}")
            met = ratio >= targets[name] and share >= WRITE_FLOOR_SHARE
        elif name in targets:
            target, met = f">= {targets[name]:.2f} of floor", ratio >= targets[name]
        elif name == "replay":
            read = tallies["widget"].median("rps") if "widget" in tallies else 0.0
            share = rps / read if read else 0.0
            target = f">= {REPLAY_SHARE:.2f} of widget: {share:.2f}"
            met = share >= REPLAY_SHARE if read else None
        elif name in WRITE_FLOORS.values():
            clients = write_floor.concurrency(dict(os.environ))
            target = f"pgbench, same statement, {clients} clients (p50/p99: mean latency)"
            met = None
        elif name == "login":
            ratio = rps / login_ideal
            target = f">= {LOGIN_SHARE:.2f} of 2/bcrypt = {login_ideal:.1f} req/s"
            met = ratio >= LOGIN_SHARE
        elif name == "refresh":
            # A write (rotation, spent token, purge): one commit per request, no bcrypt.
            target, met = "p99 <= 100 ms (a write per request; ratio vs floor)", p99 <= 100
        else:
            target = f"read p99 <= {MIXED_P99_MS:.0f} ms (ratio: reads vs floor)"
            met = p99 <= MIXED_P99_MS
        if met is not None and tally.errors():
            met = False
        rows.append(Row(name, rps, tally.median("p50_ms"), p99, tally.errors(), ratio, target,
                        met))
    return rows


def report(args: argparse.Namespace, rows: list[Row]) -> None:
    path = "direct to gunicorn" if args.direct else "through nginx"
    print(f"\nwidgets={args.widgets} rounds={args.rounds} duration={args.duration}s "
          f"connections={args.connections} cores={os.cpu_count()} {path} "
          f"bcrypt cost {args.bcrypt_rounds} workers x pool = "
          f"{write_floor.concurrency(dict(os.environ))} commit_delay={args.commit_delay or 0} "
          f"commit_siblings={args.commit_siblings or 5}")
    print(f"{'scenario':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'ratio':>6}  target")
    for row in rows:
        verdict = "" if row.met is None else ("  met" if row.met else "  MISSED")
        print(f"{row.name:<10} {row.rps:>9.0f} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f} "
              f"{row.errors:>7} {row.ratio:>6.2f}  {row.target}{verdict}")


def compare(args: argparse.Namespace, tallies: dict[str, dict[str, Tally]]) -> bool:
    """--servers: each scenario under both servers, the ratios, and the acceptance verdicts.
    True when every judged row met its target and no request failed."""
    first, second = args.server_list
    path = "direct" if args.direct else "through nginx"
    print(f"\nwidgets={args.widgets} rounds={args.rounds} duration={args.duration}s "
          f"connections={args.connections} cores={os.cpu_count()} {path} "
          f"workers={config.web_concurrency(os.environ)} "
          f"bcrypt cost {args.bcrypt_rounds}; medians, interleaved")
    print(f"{'scenario':<10} {first + ' req/s':>14} {'p99 ms':>7} {second + ' req/s':>14} "
          f"{'p99 ms':>7} {'ratio':>6} {'p99 x':>6} {'errors':>6}  target")
    ok = True
    for name, pair in tallies.items():
        a, b = pair[first], pair[second]
        ratio = b.median("rps") / a.median("rps") if a.median("rps") else 0.0
        p99 = b.median("p99_ms") / a.median("p99_ms") if a.median("p99_ms") else 0.0
        errors = a.errors() + b.errors()
        wanted = SERVER_TARGETS.get(name, 1.0)
        judged = name not in ("login", "mixed", "refresh")
        met = ratio >= wanted and p99 <= SERVER_P99 and not errors
        target = (f">= {wanted:.2f}x, p99 <= {SERVER_P99:.2f}x" + ("  met" if met else "  MISSED")
                  if judged else "(not judged)")
        ok = ok and (met or not judged) and not errors
        print(f"{name:<10} {a.median('rps'):>14.0f} {a.median('p99_ms'):>7.2f} "
              f"{b.median('rps'):>14.0f} {b.median('p99_ms'):>7.2f} {ratio:>6.2f} {p99:>6.2f} "
              f"{errors:>6}  {target}")
    return ok


def run_servers(args: argparse.Namespace, bench: Bench) -> int:
    """--servers: the scenarios (and "hello", the floor) under each server, interleaved."""
    bench.setup_servers()
    names = ["hello", *args.names]
    tallies = {name: {server: Tally() for server in args.server_list} for name in names}
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        order = args.server_list if round_no % 2 else args.server_list[::-1]
        for name in names:
            for server in order:
                bench.use(server)
                result = bench.floor() if name == "hello" else bench.scenario(name)
                tallies[name][server].runs.append(result)
                print(f"round {round_no}/{args.rounds}: {name} under {server} "
                      f"{result.rps:.0f} req/s p99 {result.p99_ms:.1f} ms "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return 0 if compare(args, tallies) else 1


def plot(args: argparse.Namespace, rows: list[Row], path: Path) -> None:
    """Two panels: each scenario's req/s beside the floor's, and its p99."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row.name for row in rows]
    colours = ["#888888" if row.met is None else ("#2e7d32" if row.met else "#c62828")
               for row in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    bars = top.bar(names, [row.rps for row in rows], color=colours)
    top.axhline(rows[0].rps, color="#555555", linestyle="--", linewidth=1,
                label=f"floor (hello) {rows[0].rps:,.0f} req/s")
    for bar, row in zip(bars, rows, strict=True):
        top.annotate(f"{row.ratio:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                     ha="center", va="bottom", fontsize=8)
    top.set_ylabel("req/s (median)")
    top.legend(loc="upper right", fontsize=8)
    path_label = "direct to gunicorn" if args.direct else "through nginx"
    top.set_title(f"widgetsvc vs floor, {args.widgets:,} widgets, {path_label}, "
                  f"{args.connections} connections, {os.cpu_count()} cores "
                  "(green met, red missed, grey floor/not judged; labels: ratio)", fontsize=9)
    bottom.bar(names, [row.p99_ms for row in rows], color=colours)
    bottom.set_ylabel("p99 latency, ms (median)")
    bottom.set_yscale("log")
    plt.setp(bottom.get_xticklabels(), rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = cmdline.Parser(
        "bin/bench", 'The service against a plain Falcon "hello" floor, served the same way '
        "(wrk).", details=__doc__.split("\n", 2)[2],
        environment=[("DATABASE_URL", "with --url: that service's database, seeded once"),
                     ("HASH_SLOTS / AUTH_IN_FLIGHT", "for the login scenarios (4 / 0)")],
        exit_codes=[(0, "ran (each row says met or MISSED)"), (1, "could not run")])
    parser.add_argument("--widgets", type=int, default=SMALL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--login-connections", type=int, default=4)
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--direct", action="store_true",
                        help="serve from gunicorn alone, without the nginx front")
    parser.add_argument("--servers", metavar="gunicorn,granian",
                        help="compare the two WSGI servers (each scenario under both, "
                             "interleaved) instead of the service against the floor")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="also draw req/s and p99 per scenario against the floor")
    parser.add_argument("--commit-delay", type=int, metavar="MICROSECONDS",
                        help="the cluster's commit_delay (group commit; default: 0)")
    parser.add_argument("--commit-siblings", type=int, metavar="N",
                        help="the cluster's commit_siblings (default: 5)")
    parser.add_argument("--front-door", action="store_true",
                        help="instead: the front door's latency figures under idle, slowloris "
                             "and login-flood clients (bench/front_door.py, about 3 minutes)")
    parser.add_argument("--short", action="store_true", help="one quick round (for CI)")
    parser.add_argument("--verbose", action="store_true", help="show the servers' logs")
    parser.add_argument("--url", help="measure this running service (http://127.0.0.1:PORT, "
                        "e.g. bin/cluster's front) instead of starting one; its database "
                        "(DATABASE_URL, e.g. from bin/cluster env) is seeded once")
    args = parser.parse_args(argv)
    if args.front_door:
        from bench import front_door

        return front_door.main()
    if args.short:
        args.rounds, args.duration = 1, 1
    if args.url and not os.environ.get("DATABASE_URL"):
        parser.error("--url needs DATABASE_URL (the service's database) to seed it")
    if args.url and urllib.parse.urlsplit(args.url).hostname != "127.0.0.1":
        parser.error("--url: only http://127.0.0.1:PORT")
    args.names = [n for n in args.scenarios.split(",") if n]
    unknown = set(args.names) - set(SCENARIOS) - set(OPTIONAL)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.url and "widget-nometrics" in args.names:
        parser.error("widget-nometrics starts its own service: not with --url")

    if args.servers:
        args.server_list = [n.strip() for n in args.servers.split(",") if n.strip()]
        if sorted(args.server_list) != sorted(SERVERS):
            parser.error("--servers: gunicorn,granian (in either order)")
        if args.url or args.plot:
            parser.error("--servers starts its own services: no --url nor --plot")
        bench = Bench(args)
        try:
            return run_servers(args, bench)
        finally:
            bench.teardown()

    bench = Bench(args)
    try:
        bench.setup()
        names = list(args.names)
        if bench.judges_list_at_small():
            names.insert(names.index("list") + 1 if "list" in names else 0, "list@1k")
        tallies = {name: Tally() for name in names}
        floor = Tally()
        started = time.monotonic()
        for round_no in range(1, args.rounds + 1):
            for name in names:
                floor.runs.append(bench.floor())
                tallies[name].runs.append(bench.scenario(name))
                print(f"round {round_no}/{args.rounds}: {name} "
                      f"{tallies[name].runs[-1].rps:.0f} req/s "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        rows = judge(args, tallies, floor)
        report(args, rows)
        if bench.walks_cursors():
            bench.walk_cursors()
        if args.plot:
            plot(args, rows, args.plot)
        total_errors = sum(row.errors for row in rows)
    finally:
        bench.teardown()
    return 1 if total_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
