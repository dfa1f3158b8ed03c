"""The per-account lock of failed logins (docs/API.md §8.1), counted in PostgreSQL so every worker
and every instance sees the same count.

A failure is a well-formed login whose e-mail and password do not match. ``failures`` of them
for one lower-cased e-mail (registered or not) within ``window`` seconds lock that e-mail:
every login for it is answered 429 without a hash until the oldest of them leaves the window.
A successful login resets the count.
"""

from __future__ import annotations

import falcon

from widgetsvc.db import Database
from widgetsvc.errors import fail


class LoginLock:
    def __init__(self, db: Database, failures: int, window: int):
        self.db = db
        self.failures = failures  # 0: no lock
        self.window = window

    def check(self, email: str) -> None:
        """Raise the 429 while ``email`` is locked."""
        if not self.failures:
            return
        row = self.db.one("login_lock", email=email, window_seconds=self.window,
                          skip=self.failures - 1)
        if row is not None:
            seconds = row["retry_after"]
            raise fail(
                falcon.HTTP_429,
                f"Too many failed login attempts. Try again in {seconds} seconds.",
                {"Retry-After": str(seconds)},
            )

    def record_failure(self, email: str) -> None:
        if self.failures:
            self.db.execute("record_login_failure", email=email, window_seconds=self.window)

    def reset(self, email: str) -> None:
        if self.failures:
            self.db.execute("reset_login_failures", email=email)
