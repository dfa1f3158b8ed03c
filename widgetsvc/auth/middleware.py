"""The auth middleware: every resource declares what each of its methods needs.

``auth = {"GET": TOKEN, "POST": ADMIN}`` on a resource class; a method without a declaration is
refused at startup (see ``check_declarations``), so nothing is public by accident. One query per
authenticated request answers: does the user exist, is it an admin now, is the token revoked.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import falcon

from widgetsvc import errors
from widgetsvc.auth import tokens
from widgetsvc.db import Database

NONE = "none"
TOKEN = "token"  # noqa: S105 (an auth level, not a secret)
ADMIN = "admin"
LEVELS = (NONE, TOKEN, ADMIN)

INVALID = "Invalid token. Please log in again."
EXPIRED = "Access token expired. Please log in again."
REVOKED = "Token blacklisted. Please log in again."


@dataclass(frozen=True)
class CurrentUser:
    id: int
    public_id: Any
    email: str
    admin: bool
    registered_on: datetime
    token: tokens.Claims


def check_declarations(resource: object) -> None:
    """Every ``on_<method>`` responder must say who may call it."""
    declared = getattr(resource, "auth", {})
    for name, _ in inspect.getmembers(resource, callable):
        if name.startswith("on_"):
            method = name[3:].split("_", 1)[0].upper()
            if declared.get(method) not in LEVELS:
                raise TypeError(f"{type(resource).__name__}.{name} declares no auth level")


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class AuthMiddleware:
    def __init__(self, db: Database, *, secret: str, leeway: int, user_realm: str,
                 admin_realm: str):
        self.db = db
        self.secret = secret
        self.leeway = leeway
        self.user_realm = user_realm
        self.admin_realm = admin_realm

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params):
        if resource is None or req.method == "OPTIONS":
            return
        level = getattr(resource, "auth", {}).get(req.method, NONE)
        if level == NONE:
            return
        realm = self.admin_realm if level == ADMIN else self.user_realm
        req.context.user = self.authenticate(req.get_header("Authorization"), realm)
        if level == ADMIN and not req.context.user.admin:
            raise errors.not_admin(self.admin_realm)

    def authenticate(self, header: str | None, realm: str) -> CurrentUser:
        token = bearer_token(header)
        if token is None:
            raise errors.unauthorized(realm)
        try:
            claims = tokens.decode(token, secret=self.secret, leeway=self.leeway)
        except tokens.TokenExpired:
            raise errors.invalid_token(realm, EXPIRED) from None
        except tokens.TokenInvalid:
            raise errors.invalid_token(realm, INVALID) from None
        row = self.db.one("authenticate", public_id=claims.public_id, jti=claims.jti)
        if row is None:
            raise errors.invalid_token(realm, INVALID)
        if row["revoked"]:
            raise errors.invalid_token(realm, REVOKED)
        return CurrentUser(
            id=row["id"],
            public_id=row["public_id"],
            email=row["email"],
            admin=row["admin"],
            registered_on=row["registered_on"],
            token=claims,
        )
