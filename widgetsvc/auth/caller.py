"""The database half of authentication: does the token's user still exist, is the token
revoked. ``token_caller`` (sql/migrations/0003_token_caller.sql) is its one definition.

Two ways to ask, both ending in ``check``:

* ``lookup``: the ``authenticate`` query on its own, before the responder runs. Writes need it
  (they must know the caller is an admin before they change anything), and so does
  ``GET /auth/user``, whose answer is the caller.
* ``CallerReads``: for the reads a resource lists in ``reads_check_caller``, the check rides in
  the read itself. Each of those queries joins ``token_caller`` and returns no row when the user
  is gone and ``revoked`` on every row, so a read costs one round trip instead of two.
  No row reaches the responder before the check has passed. A responder that answers without
  reading (a 400 for a bad query string) calls ``check_unread`` before it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    return {"subject": claims.public_id, "token_id": claims.jti}


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


class CallerReads:
    """A request's reads, each of which checks the caller (see the module docstring)."""

    def __init__(self, db: Database, claims: tokens.Claims, realm: str):
        self._db = db
        self._claims = claims
        self._realm = realm

    def all(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        """The rows of ``query``; raises the 401 instead when the caller fails the check."""
        rows = self._db.all(query, **params, **query_params(self._claims))
        check(rows[0] if rows else None, self._realm)
        return rows

    def one(self, query: str, /, **params: Any) -> dict[str, Any]:
        """The single row of a query that always returns one for a valid caller."""
        return self.all(query, **params)[0]

    def check_unread(self) -> None:
        """For a responder about to answer without reading: the check on its own."""
        lookup(self._db, self._claims, self._realm)
