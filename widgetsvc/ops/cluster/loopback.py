"""HTTP calls to the cluster's parts, all on loopback: etcd's and Patroni's JSON APIs, and the
health checks of the instances, the front and the exporters."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def http_json(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


def post_json(url: str, body: dict, headers: dict[str, str] | None = None,
              timeout: float = 5.0) -> dict:
    """POST ``body``; the JSON answer, an error's too (etcd's API answers errors in JSON)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read() or b"{}")
        except ValueError:
            return {"error": f"HTTP {exc.code}"}


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def answers_ok(url: str) -> bool:
    """GET ``url`` answers 200; no answer at all is False, not an error."""
    try:
        return http_status(url) == 200
    except OSError:
        return False
