"""A tiny HTTP client for the tests that talk to a real ``bin/serve`` (gunicorn) over TCP."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes
    seconds: float

    @property
    def json(self):
        assert self.headers.get("Content-Type", "").startswith("application/json"), (
            self.status, dict(self.headers), self.raw[:500])
        return json.loads(self.raw)

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")


def call(url_or_port, method: str, path: str, *, data: dict | None = None,
         body: bytes | None = None, chunked: bool = False,
         token: str | None = None, timeout: float = 30.0,
         headers: dict[str, str] | None = None, source: str | None = None) -> Reply:
    """One request on its own connection; ``data`` is sent as a JSON body, ``body`` as the
    bytes it is (with whatever Content-Type ``headers`` give); ``chunked``: the body in 8 KiB
    chunks (``Transfer-Encoding: chunked``, no Content-Length), as streaming clients send;
    ``source``: the local address to send from (e.g. ``127.0.0.2``, another client than
    ``127.0.0.1``)."""
    if data is not None and body is not None:
        raise ValueError("call: data (sent as JSON) or body (bytes), not both")
    port = url_or_port if isinstance(url_or_port, int) else url_or_port.port
    headers = dict(headers or {})
    if data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        if chunked:
            pieces = (body[i:i + 8192] for i in range(0, len(body or b""), 8192))
            conn.request(method, path, body=pieces, headers=headers, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return Reply(resp.status, resp.headers, raw, time.monotonic() - started)
    finally:
        conn.close()
