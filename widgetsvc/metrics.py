"""Prometheus metrics (docs/operations.md, "Metrics and alerts"): the names and labels are fixed
there, so that dashboards and alert rules can rely on them.

gunicorn's workers are separate processes: ``prometheus_client``'s multiprocess mode keeps each
worker's values in files under ``PROMETHEUS_MULTIPROC_DIR`` and the master adds them up when
scraped, on its own listener (``METRICS_PORT`` on 127.0.0.1, never the public front). The
directory must be in the environment before ``prometheus_client`` is first imported:
gunicorn.conf.py sets it up (:func:`prepare_multiprocess_dir`) before it loads the app.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from widgetsvc.config import METRICS_MULTIPROC_ENV

# 1 ms to 10 s (issue 19): a widget read takes a few ms, a login a quarter of a second.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404)
# registry=None: in multiprocess mode the values live in the workers' files, which the master's
# listener adds up; nothing reads the process's default registry, and leaving the metrics out
# of it lets a reload (SIGHUP: gunicorn.conf.py imports widgetsvc afresh) define them again.

HTTP_REQUESTS = Counter("http_requests_total", "Requests answered by the app",
                        ["method", "route", "status"], registry=None)
HTTP_DURATION = Histogram("http_request_duration_seconds",
                          "Time from the request reaching the app to its answer",
                          ["method", "route"], buckets=BUCKETS, registry=None)
# Gauges: every live worker's own value, added up (a dead worker's files no longer count).
DB_POOL = Gauge("db_pool_connections", "Database pool connections by state (in_use, idle, "
                "waiting: requests waiting for one)", ["state"], multiprocess_mode="livesum",
                registry=None)
HASH_SLOTS_BUSY = Gauge("auth_hash_slots_busy", "Password hashing slots held now",
                        multiprocess_mode="livesum", registry=None)
HASH_SLOTS = Gauge("auth_hash_slots", "Password hashing slots of the instance (HASH_SLOTS)",
                   multiprocess_mode="livemax", registry=None)
LOGIN_FAILURES = Counter("auth_login_failures", "Logins refused: failure (wrong e-mail or "
                         "password) or locked (the failed-login lock's 429)", ["outcome"],
                         registry=None)
REFRESHES = Counter("auth_refresh", "Refresh token presentations: ok, invalid, reused",
                    ["outcome"], registry=None)


class MetricsMiddleware:
    """Counts and times every request by method, route template and status. The route is
    Falcon's template (``/api/v1/widgets/{name}``), never the raw path: a label per widget name
    would grow without bound. Label children are cached: ``labels()`` takes a lock."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str | None, int], Any] = {}
        self._timers: dict[tuple[str, str | None], Any] = {}

    def process_request(self, req, resp) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        started = getattr(req.context, "metrics_started", None)
        template = req.uri_template if resource is not None else None
        key = (req.method, template, resp.status_code)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = HTTP_REQUESTS.labels(
                req.method, route_label(template), str(resp.status_code))
        counter.inc()
        if started is not None:
            timer = self._timers.get(key[:2])
            if timer is None:
                timer = self._timers[key[:2]] = HTTP_DURATION.labels(
                    req.method, route_label(template))
            timer.observe(time.perf_counter() - started)


def route_label(template: str | None) -> str:
    """Falcon's template without its converters (``{name:widget_name}`` -> ``{name}``), or
    ``unmatched``. String code, no regular expression (the template is ours, but the rule
    stands: docs/API.md §8.1)."""
    if not template:
        return UNMATCHED
    parts = template.split("{")
    out = [parts[0]]
    for part in parts[1:]:
        field, brace, rest = part.partition("}")
        out.append("{" + field.partition(":")[0] + brace + rest)
    return "".join(out)


def watch_pool(pool, interval: float = 1.0) -> threading.Thread:
    """Copy the pool's counts into ``db_pool_connections`` once a ``interval`` (a daemon
    thread per worker, not a cost on every request)."""
    in_use, idle, waiting = (DB_POOL.labels(state) for state in ("in_use", "idle", "waiting"))

    def loop() -> None:
        while not pool.closed:
            try:
                stats = pool.get_stats()
            except Exception:  # noqa: BLE001 (a closed pool: the worker is stopping)
                return
            size = stats.get("pool_size", 0)
            available = stats.get("pool_available", 0)
            in_use.set(max(0, size - available))
            idle.set(available)
            waiting.set(stats.get("requests_waiting", 0))
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="metrics-pool", daemon=True)
    thread.start()
    return thread


def multiprocess_dir() -> Path | None:
    raw = os.environ.get(METRICS_MULTIPROC_ENV)
    return Path(raw) if raw else None
