"""The store of the administrators' user endpoints: the users list (sql/queries/users.sql's
users_page and users_cursor_page) and the admin flags (update_user_flags, and the sessions'
revocation when disabling). Answers in types, or the contract's 404 and 409; the sentinels
(``found``, NULL columns for a refused change, the padding row past the end) are read here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import falcon

from widgetsvc import errors, paging
from widgetsvc.auth.sessions import RefreshKeys
from widgetsvc.db import Database

SELF_CHANGE = "Administrators cannot demote or disable themselves."
LAST_ADMIN = "The last administrator cannot be demoted or disabled."


@dataclass(frozen=True)
class UserAccount:
    email: str
    public_id: uuid.UUID
    admin: bool
    disabled: bool
    registered_on: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> UserAccount:
        return cls(row["email"], row["public_id"], row["admin"], row["disabled"],
                   row["registered_on"])


@dataclass(frozen=True)
class UserPage:
    """One page of users: the total (None on a cursor page) and the next cursor, if any."""

    items: list[UserAccount]
    total: int | None
    next_cursor: str | None = None


def not_found(public_id: str) -> errors.APIError:
    return errors.fail(falcon.HTTP_404, f"{public_id} not found in database.")


class UserStore:
    def __init__(self, db: Database, cursor_keys: RefreshKeys):
        self._db = db
        self.cursor_keys = cursor_keys

    def page(self, listing: paging.UserListing) -> UserPage:
        if listing.cursor is not None:
            rows = self._db.all("users_cursor_page", **paging.user_cursor_params(listing))
            return UserPage([UserAccount.of(row) for row in rows[: listing.per_page]], None,
                            paging.next_user_cursor(self.cursor_keys, listing, rows))
        wanted = paging.Requested(listing.number, listing.per_page)
        rows = self._db.all("users_page", limit=wanted.limit, offset=wanted.offset)
        return UserPage([UserAccount.of(row) for row in rows if row["public_id"] is not None],
                        rows[0]["total_items"])

    def set_flags(self, by: uuid.UUID, public_id: str, *, admin: bool | None,
                  disabled: bool | None) -> UserAccount:
        """Change the user's flags (None: as it is) for the administrator ``by``; disabling
        revokes every session at once. The 404, or the 409 for demoting or disabling oneself
        or the last enabled administrator (docs/API.md §8.5)."""
        try:
            target = uuid.UUID(public_id)
        except ValueError:
            raise not_found(public_id) from None
        if target == by and (admin is False or disabled is True):
            raise errors.fail(falcon.HTTP_409, SELF_CHANGE)
        with self._db.transaction() as tx:
            # One statement decides the last-administrator rule as it changes the row (see
            # update_user_flags): concurrent demotions can never leave no administrator.
            row = tx.one("update_user_flags", public_id=target, admin=admin, disabled=disabled)
            if row["id"] is not None and disabled:
                # After the UPDATE above: it waited for any login holding the user's row, so
                # this statement sees that login's session too (see start_session).
                tx.execute("revoke_user_sessions", user_id=row["id"])
        if not row["found"]:
            raise not_found(public_id)
        if row["id"] is None:
            raise errors.fail(falcon.HTTP_409, LAST_ADMIN)
        return UserAccount.of(row)
