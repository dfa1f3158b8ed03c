"""The lock of failed logins (docs/API.md §8.1), per e-mail and client address, counted in
PostgreSQL so every worker and every instance sees the same count.

A failure is a well-formed login whose e-mail and password do not match, or a wrong
``current_password`` on ``PUT /auth/password``. ``failures`` of them for one lower-cased e-mail
(registered or not) from one client address within ``window`` seconds lock that e-mail from
that address; ``account_failures`` from all addresses together lock it everywhere except from
the addresses the account logged in from within ``KNOWN_ADDRESS_SECONDS``. Locked: 429 without
a hash until the failure that completed the count leaves the window. A successful login resets
the count of its e-mail and address and remembers the address.

Per address, because a lock per e-mail alone let anyone lock an administrator (whose e-mail is
public) out from everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import falcon

from widgetsvc.db import Database
from widgetsvc.errors import fail

if TYPE_CHECKING:
    from widgetsvc.auth.ratelimit import AuthRateLimit

KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600  # a successful login spares its address this long
KNOWN_ADDRESSES_PER_USER = 50  # the most recently used ones; older ones are forgotten


class LoginLock:
    """``rate``: the per-address rate limit, whose unit the lock's statements take too (the
    rate limit's 429 comes first)."""

    def __init__(self, db: Database, failures: int, window: int, account_failures: int = 0,
                 rate: AuthRateLimit | None = None):
        self.db = db
        self.rate = rate
        self.failures = failures  # per e-mail and address; 0: no such lock
        self.account_failures = account_failures  # per e-mail, all addresses; 0: none
        self.window = window

    @property
    def enabled(self) -> bool:
        return bool(self.failures or self.account_failures)

    def _params(self, address: str) -> dict:
        return {
            "address": address,
            "rate_quota": 0,
            "rate_window": 0,
            **(self.rate.params(address) if self.rate else {}),
            "window_seconds": self.window,
            "address_skip": self.failures - 1 if self.failures else None,
            "account_skip": self.account_failures - 1 if self.account_failures else None,
            "known_seconds": KNOWN_ADDRESS_SECONDS,
        }

    def check(self, email: str, address: str, context: Any = None) -> None:
        """Raise the 429 while ``email`` is locked for ``address``, after the rate limit's
        (its unit recorded in the request's ``context``)."""
        if self.enabled or (self.rate and self.rate.enabled):
            row = self.db.one("login_lock", email=email, **self._params(address))
            if self.rate:
                self.rate.record(context, row)
            raise_if_locked(row["retry_after"])

    def password_hash(self, user_id: int, address: str, context: Any = None) -> str | None:
        """``PUT /auth/password``: the user's stored hash (None: the user is gone), after the
        rate limit's and the lock's 429s for ``address``, in one statement."""
        row = self.db.one("password_hash_and_lock", user_id=user_id, **self._params(address))
        if self.rate:
            self.rate.record(context, row)
        if row is None:
            return None
        raise_if_locked(row["retry_after"])
        return row["password_hash"]

    def record_failure(self, email: str, address: str) -> None:
        if self.enabled:
            self.db.execute("record_login_failure", email=email, address=address,
                            window_seconds=self.window)

    def succeeded(self, email: str, address: str, user_id: int) -> None:
        """A successful login: reset the count of ``email`` from ``address``, and remember the
        address for the user (spared the per-account lock)."""
        if self.enabled:
            self.db.execute("login_succeeded", email=email, address=address, user_id=user_id,
                            known_seconds=KNOWN_ADDRESS_SECONDS,
                            keep_others=KNOWN_ADDRESSES_PER_USER - 1)


def raise_if_locked(seconds: int | None) -> None:
    if seconds is not None:
        raise fail(
            falcon.HTTP_429,
            f"Too many failed login attempts. Try again in {seconds} seconds.",
            {"Retry-After": str(seconds)},
        )
