"""The database half of authentication: does the token's user still exist (and is enabled),
is the token or its session revoked, is the user an admin now. ``token_caller``
(sql/migrations/0006_sessions.sql) is its one definition.

Two ways to ask, both deciding in ``Caller.admit``:

* ``Callers.current_user``: the ``authenticate`` statement on its own, before the responder
  runs: the default for every method that needs a token, so nothing is unchecked by accident.
* ``checked_rows``: for the methods a resource lists in ``caller_in_statement``, the check rides
  in the method's one statement, read or write, which a store runs. Each of those statements
  joins ``token_caller`` and returns no row when the user is gone, else ``revoked`` and
  ``admin`` on every row; a write changes nothing unless the caller passes (its condition is in
  the statement). So a request costs one round trip instead of two, and no row leaves the
  store before the check has passed. When a responder answers without its statement (a 400, an
  impossible name), ``resource.Resource`` has ``Callers.check`` decide first, so 401 and 403
  still come before 400 and 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from widgetsvc import errors
from widgetsvc.auth import tokens
from widgetsvc.db import Database

INVALID = "Invalid token. Please log in again."
REVOKED = "Token blacklisted. Please log in again."

Row = dict[str, Any]


@dataclass(frozen=True)
class CurrentUser:
    id: int
    public_id: Any
    email: str
    admin: bool
    registered_on: datetime
    token: tokens.Claims


@dataclass
class Caller:
    """A verified token whose caller a statement of this request has yet to check.

    ``admin_realm`` is set for a method that needs an administrator: a caller who is not one
    gets the 403 (and the statement, a write, has changed nothing). ``decided`` turns true once
    a statement's answer was judged, whichever way: the check is never asked twice."""

    claims: tokens.Claims
    realm: str
    admin_realm: str | None = None
    decided: bool = field(default=False, init=False)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters every caller-checking statement takes."""
        return {"subject": self.claims.public_id, "token_id": self.claims.jti,
                "session_id": self.claims.sid}

    def admit(self, row: Row | None) -> Row:
        """The caller's row when it passes: present (the user exists), not ``revoked``, and an
        administrator where one is needed; else the 401 or 403."""
        self.decided = True
        if row is None:
            raise errors.invalid_token(self.realm, INVALID)
        if row["revoked"]:
            raise errors.invalid_token(self.realm, REVOKED)
        if self.admin_realm is not None and not row["admin"]:
            raise errors.not_admin(self.admin_realm)
        return row


def checked_rows(db: Database, caller: Caller, query: str, /, **params: Any) -> list[Row]:
    """The rows of a statement that checks its caller (a store's door to such statements);
    the 401 or 403 instead when the caller fails, before any row is handed on."""
    rows = db.all(query, **params, **caller.params)
    caller.admit(rows[0] if rows else None)
    return rows


class Callers:
    """The ``authenticate`` statement: the caller checked on its own."""

    def __init__(self, db: Database):
        self._db = db

    def current_user(self, claims: tokens.Claims, realm: str,
                     admin_realm: str | None = None) -> CurrentUser:
        """Before the responder: the token's user as it is now, or the 401 (403)."""
        caller = Caller(claims, realm, admin_realm)
        row = caller.admit(self._db.one("authenticate", **caller.params))
        return CurrentUser(id=row["id"], public_id=row["public_id"], email=row["email"],
                           admin=row["admin"], registered_on=row["registered_on"],
                           token=claims)

    def check(self, caller: Caller) -> None:
        """For a request answered without its statement: the check on its own, unless a
        statement of the request already decided it."""
        if not caller.decided:
            caller.admit(self._db.one("authenticate", **caller.params))
