#!/usr/bin/env python3
"""Soak test: a mixed workload from many concurrent clients against the real ``bin/serve``,
then a check that no acknowledged write was lost (issue 5). Run it through ``bin/soak``.

    bin/soak                         # 60 s, 32 clients, its own bin/serve + throwaway cluster
    bin/soak --duration 10           # the short version the test suite runs
    bin/soak --url http://127.0.0.1:8000 --admin-email a@example.com --admin-password ...

The load and the verification are plain HTTP: nothing of the service is imported for them.
Only when it hosts its own server does it use ``widgetsvc.ops.localdb`` to create the throwaway
PostgreSQL cluster under ``var/`` (as the tests do), and ``bin/add-user`` to make the admin.

Every client works on widget names of its own (``soak<run>-c<client>-...``), so what must exist
at the end is known exactly. A write counts as acknowledged only on its success status; a write
whose answer never arrived (connection error) is "uncertain" and excluded from the loss check.

It prints requests served, requests/s, errors by status (5xx and connection errors counted
separately) and lost writes: acknowledged creates/updates missing afterwards, acknowledged
deletes still present, acknowledged logouts whose token still works. Exit status 0 only when
there was no 5xx, no connection error, no other unexpected answer and no lost write.
All traffic goes to 127.0.0.1 and every loop is bounded by time.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
PASSWORD = "Soak-pass-" + secrets.token_hex(4)
EXPIRED = "Access token expired. Please log in again."
REQUEST_TIMEOUT = 30.0
DEFAULT_DURATION = 60.0  # seconds of load
DEFAULT_CLIENTS = 32
DEFAULT_BCRYPT_ROUNDS = "4"  # its own server's: the soak measures the API, not bcrypt

# The mix: reads of the list and of items, admin writes, logins and logouts.
WEIGHTS = {
    "list": 25, "item": 20, "create": 14, "put": 12, "put_new": 4, "delete": 10,
    "login_logout": 12, "admin_relogin": 3,
}


class ConnectionFailed(Exception):
    """No HTTP answer at all (refused, reset, timed out)."""


@dataclass
class Reply:
    status: int
    body: dict | list | None
    headers: http.client.HTTPMessage


class Client:
    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port

    def request(self, method: str, path: str, data: dict | None = None,
                token: str | None = None) -> Reply:
        headers = {}
        body = None
        if data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Reply(resp.status, parsed, resp.headers)


@dataclass
class Stats:
    """One client's view: counts, latencies, and the writes the server acknowledged."""
    requests: int = 0
    by_op: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)  # (op, status) -> count
    server_errors: int = 0
    connection_errors: int = 0
    samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    widgets: dict[str, str] = field(default_factory=dict)  # name -> acknowledged info_url
    deleted: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)
    revoked: list[str] = field(default_factory=list)


class Worker:
    def __init__(self, client: Client, number: int, run_id: str, admin: tuple[str, str],
                 user: tuple[str, str], deadline: float, stop: threading.Event):
        self.client = client
        self.number = number
        self.prefix = f"soak{run_id}-c{number}"
        self.admin = admin
        self.user = user
        self.deadline = deadline
        self.stop = stop
        self.rng = random.Random(f"{run_id}-{number}")
        self.stats = Stats()
        self.counter = 0
        self.admin_token: str | None = None
        self.user_token: str | None = None

    # -- one request, accounted -----------------------------------------------------------
    def call(self, op: str, method: str, path: str, expected: tuple[int, ...],
             data: dict | None = None, token: str | None = None) -> Reply | None:
        """The reply when its status is one of ``expected``; None otherwise (recorded)."""
        started = time.monotonic()
        try:
            reply = self.client.request(method, path, data, token)
        except ConnectionFailed as exc:
            self.stats.connection_errors += 1
            self._sample(f"{op}: {method} {path}: {exc}")
            return None
        self.stats.latencies.append(time.monotonic() - started)
        self.stats.requests += 1
        self.stats.by_op[op] += 1
        self.stats.statuses[reply.status] += 1
        if reply.status in expected:
            return reply
        if reply.status >= 500:
            self.stats.server_errors += 1
        if reply.status == 401 and isinstance(reply.body, dict) and (
            reply.body.get("message") == EXPIRED
        ):
            # Long soaks outlive a token: log in again, not an error.
            self.admin_token = self.user_token = None
            return None
        self.stats.unexpected[(op, reply.status)] += 1
        self._sample(f"{op}: {method} {path}: {reply.status} {json.dumps(reply.body)[:200]}")
        return None

    def _sample(self, text: str) -> None:
        if len(self.stats.samples) < 5:
            self.stats.samples.append(text)

    def login(self, op: str, who: tuple[str, str]) -> str | None:
        reply = self.call(op, "POST", f"{API}/auth/login", (200,),
                          {"email": who[0], "password": who[1]})
        return reply.body["access_token"] if reply else None

    def widget_fields(self) -> dict[str, str]:
        self.counter += 1
        days = self.rng.randint(1, 3000)
        deadline = time.strftime("%Y-%m-%d", time.gmtime(time.time() + days * 86400))
        return {"info_url": f"https://c{self.number}-v{self.counter}.example.org/soak",
                "deadline": deadline}

    # -- the workload -----------------------------------------------------------------------
    def run(self) -> None:
        ops, weights = zip(*WEIGHTS.items(), strict=True)
        while time.monotonic() < self.deadline and not self.stop.is_set():
            if self.admin_token is None:
                self.admin_token = self.login("login", self.admin)
            if self.user_token is None:
                self.user_token = self.login("login", self.user)
            if self.admin_token is None or self.user_token is None:
                time.sleep(0.05)  # a failed login is already recorded; don't spin
                continue
            op = self.rng.choices(ops, weights)[0]
            getattr(self, f"op_{op}")()

    def op_list(self) -> None:
        page = self.rng.randint(1, 5)
        per_page = self.rng.choice((5, 10, 25, 50, 100))
        self.call("list", "GET", f"{API}/widgets?page={page}&per_page={per_page}", (200,),
                  token=self.user_token)

    def op_item(self) -> None:
        if not self.stats.widgets:
            return self.op_list()
        name = self.rng.choice(sorted(self.stats.widgets))
        reply = self.call("item", "GET", f"{API}/widgets/{name}", (200,), token=self.user_token)
        if reply and reply.body.get("info_url") != self.stats.widgets[name]:
            self.stats.unexpected[("item: stale info_url", 200)] += 1
            self._sample(f"item: {name} shows {reply.body.get('info_url')}, "
                         f"acknowledged {self.stats.widgets[name]}")

    def _write(self, op: str, method: str, name: str, data: dict, expected: int) -> None:
        path = f"{API}/widgets/{name}" if method == "PUT" else f"{API}/widgets"
        body = data if method == "PUT" else {"name": name, **data}
        before = self.stats.connection_errors
        reply = self.call(op, method, path, (expected,), body, self.admin_token)
        if reply:
            self.stats.widgets[name] = data["info_url"]
            self.stats.deleted.discard(name)
        elif self.stats.connection_errors > before:
            self.stats.uncertain.add(name)

    def op_create(self) -> None:
        self._write("create", "POST", f"{self.prefix}-{self.counter + 1}",
                    self.widget_fields(), 201)

    def op_put_new(self) -> None:
        self._write("put_new", "PUT", f"{self.prefix}-p{self.counter + 1}",
                    self.widget_fields(), 201)

    def op_put(self) -> None:
        if not self.stats.widgets:
            return self.op_create()
        name = self.rng.choice(sorted(self.stats.widgets))
        self._write("put", "PUT", name, self.widget_fields(), 200)

    def op_delete(self) -> None:
        if not self.stats.widgets:
            return self.op_create()
        name = self.rng.choice(sorted(self.stats.widgets))
        before = self.stats.connection_errors
        if self.call("delete", "DELETE", f"{API}/widgets/{name}", (204,),
                     token=self.admin_token):
            del self.stats.widgets[name]
            self.stats.deleted.add(name)
        elif self.stats.connection_errors > before:
            self.stats.uncertain.add(name)

    def op_login_logout(self) -> None:
        token = self.login("login_logout", self.user)
        if token and self.call("login_logout", "POST", f"{API}/auth/logout", (200,),
                               token=token):
            self.stats.revoked.append(token)

    def op_admin_relogin(self) -> None:
        if self.call("admin_relogin", "POST", f"{API}/auth/logout", (200,),
                     token=self.admin_token):
            self.stats.revoked.append(self.admin_token)
        self.admin_token = self.login("admin_relogin", self.admin)


# -- verification ---------------------------------------------------------------------------
@dataclass
class Loss:
    creates_missing: list[str] = field(default_factory=list)
    updates_lost: list[str] = field(default_factory=list)
    deletes_present: list[str] = field(default_factory=list)
    logouts_not_revoked: int = 0
    duplicates: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (len(self.creates_missing) + len(self.updates_lost) + len(self.deletes_present)
                + self.logouts_not_revoked + len(self.duplicates))


def verify(client: Client, workers: list[Worker], token: str, run_id: str, own_server: bool,
           clients: int) -> Loss:
    loss = Loss()
    listed: dict[str, str] = {}
    seen: list[str] = []
    totals: set[int] = set()
    path: str | None = f"{API}/widgets?page=1&per_page=100"
    deadline = time.monotonic() + 300
    while path and time.monotonic() < deadline:
        reply = client.request("GET", path, token=token)
        if reply.status != 200:
            loss.problems.append(f"listing {path}: {reply.status}")
            break
        totals.add(reply.body["total_items"])
        for item in reply.body["items"]:
            seen.append(item["name"])
            listed[item["name"]] = item["info_url"]
        path = reply.body["links"].get("next")
    if path:
        loss.problems.append("listing did not finish in time")
    loss.duplicates = sorted(name for name, n in Counter(seen).items() if n > 1)
    if own_server and totals != {len(seen)}:
        loss.problems.append(f"total_items {sorted(totals)} but {len(seen)} widgets listed")

    for worker in workers:
        stats = worker.stats
        for name, url in stats.widgets.items():
            if name in stats.uncertain:
                continue
            if name not in listed:
                loss.creates_missing.append(name)
            elif listed[name] != url:
                loss.updates_lost.append(name)
        for name in stats.deleted - stats.uncertain:
            if name in listed:
                loss.deletes_present.append(name)
    ours = {name for name in listed if name.startswith(f"soak{run_id}-")}
    acknowledged = {n for w in workers for n in w.stats.widgets}
    uncertain = {n for w in workers for n in w.stats.uncertain}
    strays = ours - acknowledged - uncertain
    if strays:  # present although never acknowledged (nor deleted-acknowledged) as written
        loss.problems.append(f"{len(strays)} widget(s) present that no write acknowledged: "
                             f"{sorted(strays)[:5]}")

    revoked = [t for w in workers for t in w.stats.revoked]

    def still_works(revoked_token: str) -> bool:
        try:
            return client.request("GET", f"{API}/auth/user", token=revoked_token).status != 401
        except ConnectionFailed:
            loss.problems.append("connection error while checking a revoked token")
            return False

    with ThreadPoolExecutor(max_workers=max(1, min(clients, 32))) as pool:
        loss.logouts_not_revoked = sum(pool.map(still_works, revoked))
    return loss


# -- hosting our own server -----------------------------------------------------------------
class OwnServer:
    """A throwaway cluster under var/ and the real bin/serve on a free port."""

    def __init__(self) -> None:
        sys.path.insert(0, str(REPO_ROOT))
        from widgetsvc.ops import plumbing
        from widgetsvc.ops.localdb import VAR_DIR, PrivatePostgres

        self.cluster = PrivatePostgres(VAR_DIR / f"soak-{os.getpid()}")
        self.log_path = VAR_DIR / f"soak-{os.getpid()}.serve.log"
        self.proc: subprocess.Popen | None = None
        self.port = plumbing.free_port()
        self.database_url = ""

    def start(self) -> None:
        self.cluster.start()
        self.database_url = self.cluster.create_database("widgetsvc_soak")
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "WIDGETSVC_ENV": "test",
            "BCRYPT_ROUNDS": "4",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_LEVEL": "WARNING",  # no access log line per request
            "AUTH_RATE_LIMIT": "0",  # 32 clients log in from one address
            # ... and at once: the soak looks for lost writes, not for the §8.1 503 a login
            # gets when every hashing slot is busy.
            "HASH_SLOTS": "32",
            "AUTH_IN_FLIGHT": "0",
        }
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(REPO_ROOT / "bin" / "serve")], env=env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        client = Client("127.0.0.1", self.port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("bin/serve exited:\n" + self.log_tail())
            try:
                if client.request("GET", f"{API}/health").status == 200:
                    return
            except ConnectionFailed:
                pass
            time.sleep(0.2)
        raise RuntimeError("bin/serve did not become healthy:\n" + self.log_tail())

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        self.cluster.destroy()

    def cleanup_log(self) -> None:
        self.log_path.unlink(missing_ok=True)


def add_admin(email: str, password: str, database_url: str) -> None:
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "add-user"), "--admin", "--password-stdin", email],
        input=password + "\n", text=True, capture_output=True, timeout=120,
        # The same cost as the server's: a cost-12 admin hash would make every admin login
        # (and so the workload) bcrypt-bound.
        env={**os.environ, "DATABASE_URL": database_url, "WIDGETSVC_ENV": "test",
             "BCRYPT_ROUNDS": os.environ.get("SOAK_BCRYPT_ROUNDS", "4")},
    )
    if result.returncode != 0:
        raise RuntimeError(f"bin/add-user failed: {result.stdout}{result.stderr}")


# -- main ---------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    from widgetsvc import setting_errors
    from widgetsvc.ops import cmdline  # the argument convention only (stdlib-only module)

    parser = cmdline.Parser(
        "bin/soak", "Soak test: a mixed workload from many clients against the real bin/serve, "
        "then a check that no acknowledged write was lost.", details=__doc__.split("\n", 2)[2],
        environment=[("SOAK_BCRYPT_ROUNDS",
                      f"bcrypt cost of its own server ({DEFAULT_BCRYPT_ROUNDS})"),
                     ("DATABASE_URL", "with --url: that service's database, for the check")],
        exit_codes=[(0, "clean: no 5xx, no connection error, nothing lost"),
                    (1, "a 5xx, a connection error or a lost write")])
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                        help=f"seconds of load ({DEFAULT_DURATION:g})")
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS,
                        help=f"concurrent clients ({DEFAULT_CLIENTS})")
    parser.add_argument("--url", help="an existing server on 127.0.0.1 (default: start one)")
    parser.add_argument("--admin-email", help="with --url: an existing admin's e-mail")
    parser.add_argument("--admin-password", help="with --url: that admin's password")
    args = parser.parse_args(argv)
    rounds = os.environ.get("SOAK_BCRYPT_ROUNDS", "").strip() or DEFAULT_BCRYPT_ROUNDS
    if not rounds.isdigit() or not 4 <= int(rounds) <= 31:
        refused = setting_errors.bad_setting("SOAK_BCRYPT_ROUNDS", rounds, "not a bcrypt cost",
                                             "4 to 31")
        print(f"widgetsvc: {refused}", file=sys.stderr)
        return 1
    if args.duration <= 0 or args.clients < 1:
        parser.error("--duration must be > 0 and --clients >= 1")

    own: OwnServer | None = None
    if args.url:
        parts = urlsplit(args.url)
        if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
            parser.error("--url must be http://127.0.0.1:PORT (traffic stays on this machine)")
        host, port = "127.0.0.1", parts.port
    run_id = uuid.uuid4().hex[:6]
    ok = False
    try:
        if not args.url:
            own = OwnServer()
            print(f"soak: starting bin/serve on 127.0.0.1:{own.port} with a throwaway "
                  f"cluster ({own.cluster.root})", flush=True)
            own.start()
            host, port = "127.0.0.1", own.port
        client = Client(host, port)

        user = (f"soak-user-{run_id}@example.com", PASSWORD)
        reply = client.request("POST", f"{API}/auth/register",
                               {"email": user[0], "password": user[1]})
        if reply.status != 201:
            raise RuntimeError(f"register failed: {reply.status} {reply.body}")
        if args.admin_email and args.admin_password:
            admin = (args.admin_email, args.admin_password)
        else:
            database_url = own.database_url if own else os.environ.get("DATABASE_URL", "")
            if not database_url:
                raise RuntimeError("with --url, give --admin-email/--admin-password or set "
                                   "DATABASE_URL so bin/add-user can create the admin")
            admin = (f"soak-admin-{run_id}@example.com", PASSWORD)
            add_admin(admin[0], admin[1], database_url)

        stop = threading.Event()
        started = time.monotonic()
        deadline = started + args.duration
        workers = [Worker(client, n, run_id, admin, user, deadline, stop)
                   for n in range(args.clients)]
        threads = [threading.Thread(target=w.run, name=f"soak-{w.number}", daemon=True)
                   for w in workers]
        print(f"soak: {args.clients} clients for {args.duration:g} s against "
              f"http://{host}:{port} (run {run_id})", flush=True)
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()) + REQUEST_TIMEOUT + 5)
        except KeyboardInterrupt:
            stop.set()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT + 5)
        elapsed = time.monotonic() - started
        if any(thread.is_alive() for thread in threads):
            raise RuntimeError("clients did not stop")

        stats = [w.stats for w in workers]
        served = sum(s.requests for s in stats)
        statuses = sum((s.statuses for s in stats), Counter())
        unexpected = sum((s.unexpected for s in stats), Counter())
        by_op = sum((s.by_op for s in stats), Counter())
        server_errors = sum(s.server_errors for s in stats)
        connection_errors = sum(s.connection_errors for s in stats)
        latencies = [x for s in stats for x in s.latencies]
        writes = sum(len(s.widgets) for s in stats)

        print("soak: verifying ...", flush=True)
        checker = client.request("POST", f"{API}/auth/login",
                                 {"email": user[0], "password": user[1]})
        loss = verify(client, workers, checker.body["access_token"], run_id, own is not None,
                      args.clients)

        print(f"requests served: {served}")
        print(f"requests/s: {served / elapsed:.1f}")
        print("by operation: " + ", ".join(f"{op} {n}" for op, n in sorted(by_op.items())))
        print("statuses: " + ", ".join(f"{code} {n}" for code, n in sorted(statuses.items())))
        print("latency ms: p50 {:.1f}, p95 {:.1f}, p99 {:.1f}, max {:.1f}".format(
            *(1000 * percentile(latencies, q) for q in (0.5, 0.95, 0.99, 1.0))))
        errors_by_status = Counter()
        for (_op, code), n in unexpected.items():
            errors_by_status[code] += n
        print("errors by status: " + (", ".join(
            f"{code} {n}" for code, n in sorted(errors_by_status.items())) or "none"))
        print(f"5xx responses: {server_errors}")
        print(f"connection errors: {connection_errors}")
        print(f"widgets at the end: {writes} acknowledged, "
              f"{sum(len(s.deleted) for s in stats)} acknowledged deletes, "
              f"{sum(len(s.revoked) for s in stats)} acknowledged logouts, "
              f"{sum(len(s.uncertain) for s in stats)} uncertain")
        print(f"lost writes: {loss.total} (creates missing {len(loss.creates_missing)}, "
              f"updates lost {len(loss.updates_lost)}, "
              f"deletes still present {len(loss.deletes_present)}, "
              f"logouts whose token still works {loss.logouts_not_revoked}, "
              f"duplicates {len(loss.duplicates)})")
        for sample in [x for s in stats for x in s.samples][:10]:
            print(f"  sample: {sample}")
        for problem in loss.problems:
            print(f"  problem: {problem}")
        for name in (loss.creates_missing + loss.updates_lost + loss.deletes_present)[:10]:
            print(f"  lost: {name}")
        ok = (server_errors == 0 and connection_errors == 0 and not unexpected
              and loss.total == 0 and not loss.problems and served > 0)
        print(f"result: {'PASS' if ok else 'FAIL'}")
        if not ok and own:
            print("--- bin/serve log (tail) ---\n" + own.log_tail())
    except (RuntimeError, ConnectionFailed) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        if own:
            print("--- bin/serve log (tail) ---\n" + own.log_tail(), file=sys.stderr)
    finally:
        if own:
            own.stop()
            if ok:
                own.cleanup_log()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
