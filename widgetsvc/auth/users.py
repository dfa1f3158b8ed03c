"""Creating users and checking logins and passwords: shared by the API and ``bin/add-user``."""

from __future__ import annotations

import uuid
from typing import Any

from widgetsvc.auth.passwords import check_password, dummy_hash, hash_password
from widgetsvc.auth.sessions import NewSession
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

    def register(self, email: str, password: str, session: NewSession,
                 lifetime: int) -> dict[str, Any] | None:
        """A new (non-admin) user with its first session, in one statement; None when the
        e-mail is already registered."""
        return self.db.one(
            "register_user",
            public_id=uuid.uuid4(),
            email=email,
            password_hash=hash_password(password, self.rounds),
            session_id=session.id,
            refresh_hash=session.refresh_hash,
            lifetime=lifetime,
        )

    def register_once(self, email: str, password: str, session: NewSession, lifetime: int,
                      **idempotent: Any) -> dict[str, Any]:
        """``register`` with an Idempotency-Key, in one statement (register_user_idempotent):
        the kept outcome, the in-flight flag, or the new user."""
        return self.db.one(
            "register_user_idempotent",
            public_id=uuid.uuid4(),
            email=email,
            password_hash=hash_password(password, self.rounds),
            session_id=session.id,
            refresh_hash=session.refresh_hash,
            lifetime=lifetime,
            **idempotent,
        )

    def check_login(self, email: str, password: str) -> dict[str, Any] | None:
        """The user when the password matches and the user is not disabled. Exactly one
        bcrypt check either way, so an unknown e-mail, a wrong password and a disabled user
        take the same time."""
        user = self.db.one("user_by_email", email=email)
        stored = user["password_hash"] if user else dummy_hash(self.rounds)
        matches = check_password(password, stored)
        return user if (user is not None and matches and not user["disabled"]) else None

    def start_session(self, user: dict[str, Any], session: NewSession, lifetime: int) -> bool:
        """False when the user was disabled (or removed), or their password changed, since
        ``user["password_hash"]`` was checked: decided in the inserting statement itself."""
        return self.db.one("start_session", user_id=user["id"],
                           password_hash=user["password_hash"], session_id=session.id,
                           refresh_hash=session.refresh_hash, lifetime=lifetime) is not None

    def password_matches(self, password: str, stored_hash: str) -> bool:
        return check_password(password, stored_hash)

    def set_password(self, user_id: int, session_id: uuid.UUID, old_hash: str,
                     new: str) -> bool:
        """Sets ``new`` if the stored hash is still ``old_hash`` (the one the current password
        was checked against), and revokes the user's other sessions; False when the password
        changed meanwhile (a concurrent change wins)."""
        new_hash = hash_password(new, self.rounds)
        with self.db.transaction() as tx:
            changed = tx.one("change_password", user_id=user_id, old_hash=old_hash,
                             new_hash=new_hash)["changed"]
            if changed:
                # A later statement than the change, which waited for any login holding the
                # row: it sees that login's session too (see change_password).
                tx.execute("revoke_other_sessions", user_id=user_id, session_id=session_id)
        return changed
