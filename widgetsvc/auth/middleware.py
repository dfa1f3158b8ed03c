"""The auth middleware: every resource declares what each of its methods needs.

``auth = {"GET": TOKEN, "POST": ADMIN}`` on a resource class; a method without a declaration is
refused at startup (see ``check_declarations``), so nothing is public by accident.

The token itself (signature, claims, expiry) is verified here, without I/O. Whether its user
still exists, is an admin now and has not revoked it is a database question (``caller.py``):
asked here, before the responder, unless the resource lists the method in
``caller_in_statement``; then the request's one statement (read or write), run by a store,
asks it for ``req.context.caller``, and a request answered without it has it asked first by
``resource.Resource``. Nothing is checked after a responder: the flow goes one way.
"""

from __future__ import annotations

import inspect

import falcon

from widgetsvc import errors
from widgetsvc.auth import caller, tokens
from widgetsvc.auth.keys import Keyring

NONE = "none"
TOKEN = "token"  # noqa: S105 (an auth level, not a secret)
ADMIN = "admin"
LEVELS = (NONE, TOKEN, ADMIN)

EXPIRED = "Access token expired. Please log in again."


def declared_method(method: str) -> str:
    """The method whose declaration applies: HEAD is a GET without the body, so it needs
    what GET needs (never less)."""
    return "GET" if method == "HEAD" else method


def check_declarations(resource: object) -> None:
    """Every ``on_<method>`` responder must say who may call it."""
    declared = getattr(resource, "auth", {})
    for name, _ in inspect.getmembers(resource, callable):
        if name.startswith("on_"):
            method = declared_method(name[3:].split("_", 1)[0].upper())
            if declared.get(method) not in LEVELS:
                raise TypeError(f"{type(resource).__name__}.{name} declares no auth level")
    for method in getattr(resource, "caller_in_statement", ()):
        if declared.get(method) not in (TOKEN, ADMIN):
            raise TypeError(f"{type(resource).__name__}: only a TOKEN or ADMIN method's "
                            f"statement can check the caller, not {method}")


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class AuthMiddleware:
    def __init__(self, callers: caller.Callers, *, keys: Keyring, leeway: int,
                 user_realm: str, admin_realm: str):
        self.callers = callers
        self.keys = keys
        self.leeway = leeway
        self.user_realm = user_realm
        self.admin_realm = admin_realm

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params):
        if resource is None or req.method == "OPTIONS":
            return
        method = declared_method(req.method)
        level = getattr(resource, "auth", {}).get(method, NONE)
        if level == NONE:
            return
        realm = self.admin_realm if level == ADMIN else self.user_realm
        claims = self.verify(req.get_header("Authorization"), realm)
        admin_realm = self.admin_realm if level == ADMIN else None
        if method in getattr(resource, "caller_in_statement", ()):
            req.context.caller = caller.Caller(claims, realm, admin_realm)
            return
        req.context.user = self.callers.current_user(claims, realm, admin_realm)

    def verify(self, header: str | None, realm: str) -> tokens.Claims:
        token = bearer_token(header)
        if token is None:
            raise errors.unauthorized(realm)
        try:
            return tokens.decode(token, keys=self.keys, leeway=self.leeway)
        except tokens.TokenExpired:
            raise errors.invalid_token(realm, EXPIRED) from None
        except tokens.TokenInvalid:
            raise errors.invalid_token(realm, caller.INVALID) from None
