"""What every API resource is built with, and the one place that keeps the order of refusals.

The contract's order is 401 → 403 → 400 → 404 → 412 → 409 (docs/API.md §1). A resource's
responders parse their input and call their domain's store; the store's statement checks the
caller first and decides 404, 412 and 409 after it. The one gap is a responder that refuses
before any statement ran (bad input, an impossible name): every ``on_<method>`` of a
``Resource`` is wrapped here so that such a refusal waits for the caller check, and a caller
who fails it gets the 401 or 403 instead. No responder has to remember it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon

from widgetsvc import timefmt
from widgetsvc.auth.caller import Caller, Callers
from widgetsvc.config import Config
from widgetsvc.validation import Validator

Responder = Callable[..., None]


@dataclass(frozen=True)
class Shared:
    """What ``create_app`` hands every resource: the configuration, the validator, the clock,
    and the caller check of requests answered without their statement."""

    config: Config
    validator: Validator
    clock: timefmt.Clock
    callers: Callers


def refusals_after_caller(responder: Responder) -> Responder:
    """``responder``, with any HTTP error it raises before the request's caller was decided
    held back until ``Callers.check`` has decided (one ``authenticate`` statement). A
    responder that answered without deciding it (no statement ran: a bug) is checked after
    the fact, and a refused caller gets the 401 or 403 without the headers it set."""

    @functools.wraps(responder)
    def ordered(self: Resource, req: falcon.Request, resp: falcon.Response,
                **params: Any) -> None:
        caller: Caller | None = getattr(req.context, "caller", None)
        if caller is None:  # checked by the middleware, before the responder
            responder(self, req, resp, **params)
            return
        before = set(resp.headers)
        try:
            responder(self, req, resp, **params)
        except falcon.HTTPError:
            self.shared.callers.check(caller)
            raise
        if not caller.decided:
            try:
                self.shared.callers.check(caller)
            except falcon.HTTPError:
                for name in set(resp.headers) - before:
                    resp.delete_header(name)
                raise

    ordered.refusals_after_caller = True  # type: ignore[attr-defined]
    return ordered


class Resource:
    """An API resource: ``auth`` declares each method's level (auth/middleware.py)."""

    auth: dict[str, str]

    def __init__(self, shared: Shared):
        self.shared = shared
        self.config = shared.config
        self.validator = shared.validator
        self.clock = shared.clock

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if (name.startswith("on_") and callable(member)
                    and not getattr(member, "refusals_after_caller", False)):
                setattr(cls, name, refusals_after_caller(member))
