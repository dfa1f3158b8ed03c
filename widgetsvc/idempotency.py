"""Idempotency-Key (docs/API.md §8.8): the header's rule, and what a kept outcome is keyed by.

The outcome is kept in PostgreSQL (``idempotency_keys``, migration 0012) by the statement that
makes the write (sql/queries/idempotency.sql), so the key and its write commit together. A
request is compared with the first by the SHA-256 of its validated fields, and the in-flight
409 comes from a transaction-level advisory lock whose id is derived from the key here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import falcon

from widgetsvc import errors

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
REPLAYED = "Idempotent-Replayed"
IN_FLIGHT = "A request with this Idempotency-Key is in progress."
REUSED = "Idempotency-Key reused with a different request."
RACED_SQLSTATE = "WI409"  # idempotency_key_raced(), migration 0012
INVALID = f"must be 1 to {MAX_LENGTH} printable ASCII characters"


def requested_key(req: falcon.Request) -> str | None:
    """The request's key; None without the header; the 400 (§3's shape, naming the header)
    for a key that is empty, too long, or holds anything but printable ASCII (space to ~)."""
    key = req.get_header(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_LENGTH or any(not " " <= ch <= "~" for ch in key):
        raise errors.validation_failed({HEADER: INVALID})
    return key


def request_hash(fields: dict[str, Any]) -> bytes:
    """What "the same body" means: the SHA-256 of the validated fields in a canonical form
    (so a form and a JSON body with the same values are the same request)."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).digest()


def keyed_hash(secret: bytes, fields: dict[str, Any]) -> bytes:
    """``request_hash`` for a body that holds a password: an HMAC under a server key, so the
    stored digest is no fast hash anyone could test passwords against."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(secret, text.encode(), hashlib.sha256).digest()


def lock_id(scope: str, owner: str, key: str) -> int:
    """The bigint advisory lock held by the statement recording ``key`` (64 bits of a hash:
    two live keys sharing one would only make one of them wait for a 409)."""
    digest = hashlib.sha256(f"{scope}\x00{owner}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def in_flight() -> errors.APIError:
    return errors.fail(falcon.HTTP_409, IN_FLIGHT)


def reused() -> errors.APIError:
    return errors.fail(falcon.HTTP_422, REUSED)


def raced(exc: BaseException) -> bool:
    """Whether a database error is idempotency_key_raced(): another request with the key
    committed during this statement, which wrote nothing."""
    return getattr(getattr(exc, "diag", None), "sqlstate", None) == RACED_SQLSTATE
