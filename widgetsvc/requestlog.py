"""One JSON line per request (method, path, status, duration, request id) and ``X-Request-ID``.

Only these fields are logged: never headers, bodies or query strings, so no token, password or
hash can reach the log.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import falcon
import orjson

log = logging.getLogger("widgetsvc.access")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestLogMiddleware:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        given = req.get_header("X-Request-ID")
        req.context.request_id = (
            given if given and _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        )

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        request_id = getattr(req.context, "request_id", None) or uuid.uuid4().hex
        resp.set_header("X-Request-ID", request_id)
        started = getattr(req.context, "started", None)
        duration = (time.perf_counter() - started) * 1000 if started else 0.0
        if log.isEnabledFor(logging.INFO):
            log.info(orjson.dumps({
                "method": req.method,
                "path": req.path,
                "status": resp.status_code,
                "duration_ms": round(duration, 2),
                "request_id": request_id,
            }).decode())
