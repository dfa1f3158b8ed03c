"""The database half of authentication: does the token's user still exist (and is enabled),
is the token or its session revoked, is the user an admin now. ``token_caller``
(sql/migrations/0006_sessions.sql) is
its one definition.

Two ways to ask, both ending in ``check``:

* ``lookup``: the ``authenticate`` query on its own, before the responder runs: the default
  for every method that needs a token, so nothing is unchecked by accident.
* ``CallerStatements``: for the methods a resource lists in ``caller_in_statement``, the check
  rides in the method's one statement, read or write. Each of those queries joins
  ``token_caller`` and returns no row when the user is gone, else ``revoked`` and ``admin`` on
  every row; a write changes nothing unless the caller passes (its condition is in the
  statement). So a request costs one round trip instead of two, and no row reaches the
  responder before the check has passed. A responder that answers without its statement (a
  400, an impossible name) asks for the check first (``check``, or the ``refusals_first``
  block around its input handling), so 401 and 403 still come before 400 and 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import falcon

from widgetsvc import errors
from widgetsvc.auth import tokens
from widgetsvc.db import Database

INVALID = "Invalid token. Please log in again."
REVOKED = "Token blacklisted. Please log in again."


@dataclass(frozen=True)
class CurrentUser:
    id: int
    public_id: Any
    email: str
    admin: bool
    registered_on: datetime
    token: tokens.Claims


def query_params(claims: tokens.Claims) -> dict[str, Any]:
    """The parameters every caller-checking query takes."""
    return {"subject": claims.public_id, "token_id": claims.jti, "session_id": claims.sid}


def check(row: dict[str, Any] | None, realm: str) -> dict[str, Any]:
    """The caller's row when it passes: present (the user exists) and not ``revoked``."""
    if row is None:
        raise errors.invalid_token(realm, INVALID)
    if row["revoked"]:
        raise errors.invalid_token(realm, REVOKED)
    return row


def lookup(db: Database, claims: tokens.Claims, realm: str) -> CurrentUser:
    row = check(db.one("authenticate", **query_params(claims)), realm)
    return CurrentUser(
        id=row["id"],
        public_id=row["public_id"],
        email=row["email"],
        admin=row["admin"],
        registered_on=row["registered_on"],
        token=claims,
    )


class CallerStatements:
    """A request's statements, each of which checks the caller (see the module docstring).

    ``admin_realm`` is set for a method that needs an administrator: a caller who is not one
    gets the 403 (and the statement, a write, has changed nothing)."""

    def __init__(self, db: Database, claims: tokens.Claims, realm: str,
                 admin_realm: str | None = None):
        self._db = db
        self._claims = claims
        self._realm = realm
        self._admin_realm = admin_realm

    @property
    def claims(self) -> tokens.Claims:
        """The verified token's claims (what a statement may need besides its caller)."""
        return self._claims

    def _passes(self, row: dict[str, Any] | None) -> None:
        check(row, self._realm)
        if self._admin_realm is not None and not row["admin"]:
            raise errors.not_admin(self._admin_realm)

    def all(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        """The rows of ``query``; raises the 401 (or 403) instead when the caller fails."""
        rows = self._db.all(query, **params, **query_params(self._claims))
        self._passes(rows[0] if rows else None)
        return rows

    def one(self, query: str, /, **params: Any) -> dict[str, Any]:
        """The single row of a query that always returns one for a valid caller."""
        return self.all(query, **params)[0]

    def check(self) -> None:
        """For a responder about to answer without its statement: the check on its own."""
        self._passes(self._db.one("authenticate", **query_params(self._claims)))

    @contextmanager
    def refusals_first(self) -> Iterator[None]:
        """Input errors raised inside this block (400, 404, 413, 415) go out only after the
        caller passed the check: a refused caller gets its 401 or 403 instead."""
        try:
            yield
        except falcon.HTTPError:
            self.check()
            raise
