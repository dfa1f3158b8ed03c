"""Creating users and checking logins: shared by the API and ``bin/add-user``."""

from __future__ import annotations

import uuid
from typing import Any

from widgetsvc.auth.passwords import check_password, dummy_hash, hash_password
from widgetsvc.db import Database


class Users:
    def __init__(self, db: Database, bcrypt_rounds: int):
        self.db = db
        self.rounds = bcrypt_rounds

    def create(self, email: str, password: str, *, admin: bool) -> dict[str, Any] | None:
        """The new user, or None when the e-mail is already registered (in any case)."""
        return self.db.one(
            "insert_user",
            public_id=uuid.uuid4(),
            email=email,
            password_hash=hash_password(password, self.rounds),
            admin=admin,
        )

    def check_login(self, email: str, password: str) -> dict[str, Any] | None:
        """The user when the password matches. Exactly one bcrypt check either way, so an
        unknown e-mail and a wrong password take the same time."""
        user = self.db.one("user_by_email", email=email)
        stored = user["password_hash"] if user else dummy_hash(self.rounds)
        matches = check_password(password, stored)
        return user if (user is not None and matches) else None
