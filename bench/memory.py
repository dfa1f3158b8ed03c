"""bin/bench-memory: does a worker's memory stay bounded under a large collection and many tokens?

Brings up its own cluster seeded with N widgets (default 1,000,000) and the service through
``bin/serve`` (the nginx front, production settings), then walks every page of the collection
(100 per page) and verifies K distinct access tokens (default 100,000; each one is new to the
workers' verified-token cache), and prints each gunicorn worker's resident memory (RSS) before
and after. Exits 1 when a worker ends above the limit (80 MB).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import EMAIL, PASSWORD, wait_ready  # noqa: E402
from bench.seed import fresh_session, seeded_database  # noqa: E402
from widgetsvc.auth import tokens  # noqa: E402
from widgetsvc.auth.accounts import NewUser  # noqa: E402
from widgetsvc.auth.keys import hmac_keyring  # noqa: E402
from widgetsvc.ops import cmdline, plumbing  # noqa: E402
from widgetsvc.ops.localdb import VAR_DIR, PrivatePostgres  # noqa: E402

LIMIT_MB = 80.0
PER_PAGE = 100


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def gunicorn_workers(root: int) -> dict[int, float]:
    """RSS in MB of every gunicorn worker below process ``root`` (workers are the children of
    the gunicorn master; the master itself serves no request)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid = _status(int(entry.name)).get("PPid", "").strip()
            if ppid.isdigit():
                children.setdefault(int(ppid), []).append(int(entry.name))
    workers: dict[int, float] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            stack.append(child)
            if "gunicorn" in _cmdline(pid) and "gunicorn" in _cmdline(child):
                rss = _status(child).get("VmRSS", "0 kB").split()[0]
                workers[child] = int(rss) / 1024
    return workers


class Client:
    """One keep-alive HTTP connection to the front."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str, token: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def in_parallel(work, clients: int) -> None:
    """``work(index)`` for each of ``clients`` indexes, each on its own thread; until all end."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def walk_pages(port: int, token: str, widgets: int, clients: int) -> int:
    """Every page of the collection, split between ``clients`` connections; items seen."""
    pages = -(-widgets // PER_PAGE)
    seen = [0] * clients
    failures: list[str] = []

    def work(index: int) -> None:
        client = Client(port)
        for page in range(1 + index, pages + 1, clients):
            status, body = client.get(f"/api/v1/widgets?page={page}&per_page={PER_PAGE}", token)
            if status != 200:
                failures.append(f"page {page}: {status}")
                return
            seen[index] += len(json.loads(body)["items"])

    in_parallel(work, clients)
    if failures:
        sys.exit(f"bench-memory: {failures[0]}")
    return sum(seen)


def verify_tokens(port: int, user: NewUser, secret: str, count: int, clients: int,
                  session_id: uuid.UUID) -> int:
    """GET /auth/user with ``count`` distinct, freshly signed tokens of the user (all of one
    live session)."""
    keys = hmac_keyring(secret)
    done = [0] * clients
    failures: list[str] = []

    def work(index: int) -> None:
        client = Client(port)
        for _ in range(index, count, clients):
            token, _claims = tokens.issue(user.public_id, user.admin,
                                          session_id=session_id, keys=keys, lifetime=3600,
                                          now=datetime.now(UTC))
            status, body = client.get("/api/v1/auth/user", token)
            if status != 200:
                failures.append(f"{status} {body[:200]!r}")
                return
            done[index] += 1

    in_parallel(work, clients)
    if failures:
        sys.exit(f"bench-memory: a token was refused: {failures[0]}")
    return sum(done)


def show(label: str, workers: dict[int, float]) -> None:
    rss = ", ".join(f"{pid}: {mb:.1f}" for pid, mb in sorted(workers.items()))
    print(f"{label:<34} worker RSS MB  {rss}  (max {max(workers.values()):.1f})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = cmdline.Parser(
        "bin/bench-memory", "Does a worker's memory stay bounded under a large collection and "
        "many tokens?", details=__doc__.split("\n", 2)[2],
        exit_codes=[(0, "every worker below the limit"), (1, "a worker above the limit")])
    parser.add_argument("--widgets", type=int, default=1_000_000)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    parser.add_argument("--short", action="store_true",
                        help="a quick run (20,000 widgets, 3,000 tokens) for CI")
    args = parser.parse_args(argv)
    if args.short:
        args.widgets, args.tokens = 20_000, 3_000

    cluster = PrivatePostgres(VAR_DIR / f"bench-memory-{os.getpid()}")
    secret = secrets.token_urlsafe(48)
    proc = None
    try:
        cluster.start()
        url, user = seeded_database(cluster, widgets=args.widgets, email=EMAIL,
                                    password=PASSWORD, bcrypt_rounds=4, admin=True)
        port = plumbing.free_port()
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": secret, "PORT": str(port),
               "HOST": "127.0.0.1", "WIDGETSVC_ENV": "test", "BCRYPT_ROUNDS": "4",
               "LOG_LEVEL": "WARNING", "TOKEN_LIFETIME": "3600"}
        proc = subprocess.Popen([str(REPO / "bin" / "serve"), "--no-migrate"], cwd=REPO,
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        wait_ready(port, "/api/v1/health", proc)
        session_id = fresh_session(url, user.id)
        token, _ = tokens.issue(user.public_id, user.admin, session_id=session_id,
                                keys=hmac_keyring(secret), lifetime=3600, now=datetime.now(UTC))
        before = gunicorn_workers(proc.pid)
        show("after start", before)

        started = time.monotonic()
        items = walk_pages(port, token, args.widgets, args.clients)
        print(f"walked {items:,} widgets in {-(-args.widgets // PER_PAGE):,} pages "
              f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        if items != args.widgets:
            sys.exit(f"bench-memory: walked {items} widgets, expected {args.widgets}")
        show(f"after walking {args.widgets:,} widgets", gunicorn_workers(proc.pid))

        started = time.monotonic()
        verified = verify_tokens(port, user, secret, args.tokens, args.clients, session_id)
        print(f"verified {verified:,} distinct tokens ({time.monotonic() - started:.0f} s)",
              file=sys.stderr, flush=True)
        after = gunicorn_workers(proc.pid)
        show(f"after {verified:,} distinct tokens", after)
        worst = max(after.values())
        verdict = "met" if worst < args.limit_mb else "MISSED"
        print(f"max worker RSS {worst:.1f} MB, limit {args.limit_mb:.0f} MB: {verdict}")
        return 0 if verdict == "met" else 1
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.destroy()


if __name__ == "__main__":
    raise SystemExit(main())
