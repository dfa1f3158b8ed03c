"""The per-address rate limit of login, register and password changes (docs/API.md §8.8),
counted in PostgreSQL (``auth_rate_take``, migration 0015) so that every answer can say what is
left: ``RateLimit-Policy: "auth";q=<quota>;w=60`` and ``RateLimit: "auth";r=<left>;t=<reset>``.

Every request to a limited operation takes one unit of its client address's window, whatever
its answer. Login and password changes take it inside the first statement they already run
(``login_lock``, ``password_hash_and_lock``: ``LoginLock``), so the limit costs them no round
trip. Register has no statement before its password hash, and the limit must refuse before the
hash: its unit is one statement of its own, taken before the body is read. A request refused
before its statement (a 400 body, a 401 token) takes its unit here after the fact, so it
counts, and is answered the 429 if the window was spent. nginx's ``limit_req`` stays in front
as a flood ceiling above this quota (``FrontSettings.limits`` in widgetsvc/ops/settings.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import falcon
import psycopg
import psycopg_pool

from widgetsvc import errors
from widgetsvc.auth.client import Networks, client_address
from widgetsvc.db import Database

WINDOW_SECONDS = 60
POLICY = "RateLimit-Policy"
REMAINING = "RateLimit"


@dataclass(frozen=True)
class Taken:
    """One request's unit: what is left after it (-1: refused) and the seconds to reset."""

    remaining: int
    reset_seconds: int

    @property
    def refused(self) -> bool:
        return self.remaining < 0


class AuthRateLimit:
    """``quota`` requests per ``WINDOW_SECONDS`` per client address (0: no limit)."""

    def __init__(self, quota: int) -> None:
        self.quota = quota

    @property
    def enabled(self) -> bool:
        return self.quota > 0

    def params(self, address: str) -> dict[str, Any]:
        """The parameters of a statement that takes the unit (``rate_quota`` 0: it takes none)."""
        return {"address": address, "rate_quota": self.quota, "rate_window": WINDOW_SECONDS}

    def take(self, db: Database, address: str) -> Taken:
        """The unit in a statement of its own."""
        row = db.one("auth_rate_take", **self.params(address))
        return Taken(row["remaining"], row["reset_seconds"])

    def record(self, context: Any, row: dict[str, Any] | None) -> None:
        """The unit a folded statement took (columns ``rate_remaining``, ``rate_reset``):
        kept for the answer's headers; the 429 when the window was spent."""
        if not self.enabled or row is None or row.get("rate_remaining") is None:
            return
        context.rate_taken = Taken(row["rate_remaining"], row["rate_reset"])
        if context.rate_taken.refused:
            raise refused(context.rate_taken)

    def policy(self) -> str:
        return f'"auth";q={self.quota};w={WINDOW_SECONDS}'

    def headers(self, taken: Taken) -> dict[str, str]:
        return {POLICY: self.policy(),
                REMAINING: f'"auth";r={max(taken.remaining, 0)};t={taken.reset_seconds}'}


def refused(taken: Taken) -> errors.APIError:
    """The 429 of a spent window (the headers are added by the middleware)."""
    return errors.fail(
        falcon.HTTP_429,
        f"Too many requests. Try again in {taken.reset_seconds} seconds.",
        {"Retry-After": str(taken.reset_seconds)},
    )


class RateLimitMiddleware:
    """Takes the unit of limited requests that no statement took, and writes the headers.

    ``limited``: the limited resources and method; ``first``: those whose unit is taken before
    the resource runs (register, whose only statement comes after the hash)."""

    def __init__(self, db: Database, limit: AuthRateLimit, fronts: Networks,
                 limited: dict[object, str], first: frozenset[int]) -> None:
        self.db = db
        self.limit = limit
        self.fronts = fronts
        # Called for every request of every resource: one dict lookup decides (none when the
        # limit is off).
        self.limited = ({id(resource): method for resource, method in limited.items()}
                        if limit.enabled else {})
        self.first = first

    def _applies(self, req: falcon.Request, resource: object) -> bool:
        return self.limited.get(id(resource)) == req.method

    def _take(self, req: falcon.Request) -> Taken | None:
        try:
            taken = self.limit.take(self.db, client_address(req, self.fronts))
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            return None  # the answer (the 503 already, or the request's own) goes out as it is
        req.context.rate_taken = taken
        return taken

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         params: dict) -> None:
        if id(resource) in self.first and self._applies(req, resource):
            taken = self._take(req)
            if taken is not None and taken.refused:
                raise refused(taken)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        if not self._applies(req, resource):
            return
        taken = req.context.get("rate_taken") or self._take(req)
        if taken is None:
            resp.set_header(POLICY, self.limit.policy())
            return
        if taken.refused and resp.status_code != 429:
            # Refused before its statement (a 400 body, a 401 token): the window's 429 anyway.
            error = refused(taken)
            resp.status = error.status
            resp.delete_header("WWW-Authenticate")
            resp.set_headers(error.headers or {})
            resp.content_type = falcon.MEDIA_JSON
            resp.text = json.dumps(error.body)
        resp.set_headers(self.limit.headers(taken))
