"""bin/bench-cpu: the service's own CPU cost per request, without gunicorn, wrk or the network.

wrk numbers on a 2-core machine move by a few percent from run to run, which hides changes of a
few microseconds per request. This calls the WSGI app directly, in one process, against a real
PostgreSQL (its own cluster, var/bench-cpu-<pid>, seeded like bin/bench), and prints the
process CPU time, the PostgreSQL backend's CPU time and the wall time per request for each
read scenario, next to a plain Falcon
"hello". ``--profile SCENARIO`` prints where that scenario's time goes (cProfile).

The widgetsvc imported is the one on ``sys.path`` first, so an older checkout can be measured
with this script: ``PYTHONPATH=/path/to/old/checkout .venv/bin/python bench/cpu.py``.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import logging
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(REPO))

import falcon.testing  # noqa: E402

from bench.hello import app as hello  # noqa: E402
from bench.seed import seeded_database  # noqa: E402
from widgetsvc.app import create_app  # noqa: E402
from widgetsvc.config import Config  # noqa: E402
from widgetsvc.db import Database  # noqa: E402
from widgetsvc.logs import configure_logging  # noqa: E402
from widgetsvc.ops.localdb import VAR_DIR, PrivatePostgres  # noqa: E402

EMAIL = "bench-cpu@example.com"
PASSWORD = "Bench-pass-1"  # noqa: S105 (a throwaway account)


def scenarios(widgets: int) -> dict[str, tuple[str, str]]:
    deep = max(1, int(-(-widgets // 10) * 0.9))
    return {
        "user": ("/api/v1/auth/user", ""),
        "widget": ("/api/v1/widgets/widget-5", ""),
        "list": ("/api/v1/widgets", "page=1&per_page=10"),
        "list-deep": ("/api/v1/widgets", f"page={deep}&per_page=10"),
    }


def environ(path: str, query: str, token: str) -> dict:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _start_response(status, headers, exc_info=None):
    if not status.startswith("200"):
        raise RuntimeError(f"bench request failed: {status}")


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of another process (the PostgreSQL backend), from /proc."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_request(app, path: str, query: str, token: str, n: int,
                backend: int | None) -> tuple[float, float, float]:
    """(CPU µs here, CPU µs in the PostgreSQL backend, wall µs) per request: the medians of
    five batches of n."""
    for _ in range(max(50, n // 10)):
        b"".join(app(environ(path, query, token), _start_response))
    cpu, server, wall = [], [], []
    for _ in range(5):
        c0, s0, w0 = time.process_time(), process_cpu_seconds(backend), time.perf_counter()
        for _ in range(n):
            b"".join(app(environ(path, query, token), _start_response))
        cpu.append((time.process_time() - c0) / n * 1e6)
        server.append((process_cpu_seconds(backend) - s0) / n * 1e6)
        wall.append((time.perf_counter() - w0) / n * 1e6)
    return sorted(cpu)[2], sorted(server)[2], sorted(wall)[2]


@contextlib.contextmanager
def stderr_to(sink):
    """File descriptor 2 points at ``sink`` inside the block (printed results use stdout)."""
    saved = os.dup(2)
    sys.stderr.flush()
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    from widgetsvc.ops import cmdline

    parser = cmdline.Parser(
        "bin/bench-cpu", "The service's own CPU cost per request, without gunicorn, wrk or the "
        "network.", details=__doc__.split("\n", 2)[2],
        environment=[("PYTHONPATH", "measure another checkout's widgetsvc")],
        exit_codes=[(0, "measured"), (1, "could not run")])
    parser.add_argument("--widgets", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000, help="per batch (5 batches)")
    parser.add_argument("--profile", metavar="SCENARIO", help="cProfile one scenario")
    args = parser.parse_args(argv)

    cluster = PrivatePostgres(VAR_DIR / f"bench-cpu-{os.getpid()}")
    cluster.start()
    try:
        url, _ = seeded_database(cluster, widgets=args.widgets, email=EMAIL, password=PASSWORD,
                                 bcrypt_rounds=4, admin=False)
        # The app's configuration is given its own environment; the process's stays as it was.
        config = Config.from_env({**os.environ, "DATABASE_URL": url, "WIDGETSVC_ENV": "test",
                                  "BCRYPT_ROUNDS": "4", "SECRET_KEY": secrets.token_urlsafe(48),
                                  "LOG_LEVEL": "INFO"})
        # The request log stays on (it is part of the cost), written to /dev/null: the app
        # writes it to stderr (an older checkout: the "widgetsvc.access" logger's handler).
        configure_logging("INFO")
        with open(os.devnull, "w") as sink, stderr_to(sink):
            for handler in logging.getLogger("widgetsvc.access").handlers:
                handler.setStream(sink)
            # One connection, so that every query runs in the one backend measured.
            service_db = Database(url, min_size=1, max_size=1)
            service_db.pool.open(wait=True, timeout=10)
            with service_db.pool.connection() as conn:
                backend = conn.info.backend_pid
            app = create_app(config, db=service_db)
            token = falcon.testing.TestClient(app).simulate_post(
                "/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}, host="localhost"
            ).json["access_token"]
            cases = scenarios(args.widgets)
            if args.profile:
                path, query = cases[args.profile]
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(args.requests):
                    b"".join(app(environ(path, query, token), _start_response))
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
                return 0
            print(f"widgets={args.widgets} requests={5 * args.requests} per scenario, "
                  f"one process, real PostgreSQL over a Unix socket")
            print(f"{'scenario':<10} {'CPU us':>8} {'PG CPU us':>10} {'wall us':>8}")
            cpu, server, wall = per_request(hello, "/hello", "", token, args.requests, None)
            print(f"{'hello':<10} {cpu:>8.1f} {server:>10.1f} {wall:>8.1f}")
            for name, (path, query) in cases.items():
                cpu, server, wall = per_request(app, path, query, token, args.requests, backend)
                print(f"{name:<10} {cpu:>8.1f} {server:>10.1f} {wall:>8.1f}")
    finally:
        cluster.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
