"""One JSON line per request (method, path, status, duration, request id) and ``X-Request-ID``.

Only these fields are logged: never headers, bodies or query strings, so no token, password or
hash can reach the log.

The line goes straight to standard error (where gunicorn's own logs go) with one ``write``,
not through ``logging``: a LogRecord, its formatter, the handler's lock and a flush cost about
a fifth of a widget read's own CPU time (bin/bench-cpu). One ``write`` of a line shorter than
the pipe buffer also keeps the workers' lines whole when they share a pipe.
"""

from __future__ import annotations

import os
import sys
import time

import falcon
import orjson

_REQUEST_ID_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


def safe_request_id(value: str | None) -> bool:
    """1 to 128 of ``A-Za-z0-9._:-`` (string code, no regular expression: docs/API.md §8.1)."""
    return bool(value) and len(value) <= 128 and _REQUEST_ID_CHARS.issuperset(value)


def new_request_id() -> str:
    """128 random bits as 32 hex digits (what uuid4().hex looked like, at a quarter of its cost)."""
    return os.urandom(16).hex()


def write_stderr(line: bytes) -> None:
    """Write ``line`` whole to file descriptor 2; a log that cannot be written (a closed or
    full stream) never fails the request."""
    try:
        fd = sys.stderr.fileno()
        while line:
            line = line[os.write(fd, line):]
    except (OSError, ValueError, AttributeError):
        pass


class RequestLogMiddleware:
    """``enabled``: LOG_LEVEL is INFO or DEBUG (config.py); the ``X-Request-ID`` is always set."""

    def __init__(self, enabled: bool = True):
        self._enabled = enabled

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        given = req.get_header("X-Request-ID")
        req.context.request_id = (
            given if safe_request_id(given) else new_request_id()
        )

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        request_id = getattr(req.context, "request_id", None) or new_request_id()
        resp.set_header("X-Request-ID", request_id)
        if not self._enabled:
            return
        started = getattr(req.context, "started", None)
        duration = (time.perf_counter() - started) * 1000 if started else 0.0
        write_stderr(orjson.dumps({
            "method": req.method,
            "path": req.path,
            "status": resp.status_code,
            "duration_ms": round(duration, 2),
            "request_id": request_id,
        }, option=orjson.OPT_APPEND_NEWLINE))
