"""The accounts store: registration, login and password reads and writes of sql/queries
(users.sql, sessions.sql, idempotency.sql), for the /auth resources and ``bin/add-user``.
(The administrators' /users endpoints are ``widgetsvc/users``.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import falcon
import psycopg

from widgetsvc import errors, idempotency
from widgetsvc.auth import sessions
from widgetsvc.auth.passwords import check_password, dummy_hash, hash_password
from widgetsvc.auth.sessions import NewSession, RefreshKeys
from widgetsvc.db import Database


@dataclass(frozen=True)
class Account:
    """A user as login and registration see it (``password_hash``: as it was checked)."""

    id: int | None
    public_id: uuid.UUID
    email: str
    admin: bool
    password_hash: str = field(default="", repr=False)

    @classmethod
    def of(cls, row: dict[str, Any]) -> Account:
        return cls(row["id"], row["public_id"], row["email"], row["admin"],
                   row.get("password_hash", ""))


@dataclass(frozen=True)
class NewUser:
    """A user ``bin/add-user`` (and the seeding of benches and tests) just created."""

    id: int
    public_id: uuid.UUID
    email: str
    admin: bool
    registered_on: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> NewUser:
        return cls(row["id"], row["public_id"], row["email"], row["admin"],
                   row["registered_on"])


@dataclass(frozen=True)
class Registered:
    """A registration's answer: the account, its first session and the tokens' issue time
    (None: now); ``replayed`` when it is the kept answer to an earlier Idempotency-Key."""

    public_id: uuid.UUID
    session: NewSession
    issued_at: datetime | None = None
    replayed: bool = False


def already_registered(email: str, headers: dict[str, str] | None = None) -> errors.APIError:
    return errors.fail(falcon.HTTP_409, f"{email} is already registered", headers)


class Accounts:
    def __init__(self, db: Database, bcrypt_rounds: int,
                 refresh_keys: RefreshKeys | None = None):
        self.db = db
        self.rounds = bcrypt_rounds
        self._refresh_keys = refresh_keys  # to register (a session's refresh token)

    def create(self, email: str, password: str, *, admin: bool) -> NewUser | None:
        """``bin/add-user``: the new user, or None when the e-mail is already registered (in
        any case)."""
        row = self.db.one(
            "insert_user",
            public_id=uuid.uuid4(),
            email=email,
            password_hash=hash_password(password, self.rounds),
            admin=admin,
        )
        return None if row is None else NewUser.of(row)

    def _keys(self) -> RefreshKeys:
        if self._refresh_keys is None:
            raise TypeError("Accounts was built without refresh keys: it cannot register")
        return self._refresh_keys

    def register(self, email: str, password: str, lifetime: int) -> Registered:
        """A new (non-admin) user with its first session, in one statement; the 409 when the
        e-mail is already registered."""
        session = sessions.new_session(self._keys())
        row = self.db.one(
            "register_user",
            public_id=uuid.uuid4(),
            email=email,
            password_hash=hash_password(password, self.rounds),
            session_id=session.id,
            refresh_hash=session.refresh_hash,
            lifetime=lifetime,
        )
        if row is None:
            raise already_registered(email)
        return Registered(row["public_id"], session)

    def register_once(self, email: str, password: str, lifetime: int, key: str,
                      issued_at: datetime) -> Registered:
        """``register`` with an Idempotency-Key (docs/API.md §8.8), in one statement: the
        kept outcome (its tokens issued again from the kept session id and issue time: the
        same tokens, nothing secret kept), the 422, the in-flight 409, or the new user."""
        keys = self._keys()
        session = sessions.replayable_session(keys, uuid.uuid4())
        digest = idempotency.keyed_hash(keys.keys[0], {"email": email, "password": password})
        try:
            row = self.db.one(
                "register_user_idempotent",
                public_id=uuid.uuid4(),
                email=email,
                password_hash=hash_password(password, self.rounds),
                session_id=session.id,
                refresh_hash=session.refresh_hash,
                lifetime=lifetime,
                key=key, request_hash=digest, issued_at=issued_at,
                lock_id=idempotency.lock_id("register", email.lower(), key),
            )
        except psycopg.Error as exc:
            if idempotency.raced(exc):
                raise idempotency.in_flight() from None
            raise
        if row["prior_status"] is not None:
            if bytes(row["prior_hash"]) != digest:
                raise idempotency.reused()
            if row["prior_status"] != 201:
                raise already_registered(email, {idempotency.REPLAYED: "true"})
            return Registered(
                row["prior_public_id"],
                sessions.replayable_session(keys, row["prior_session_id"]),
                row["prior_issued_at"], replayed=True)
        if not row["free"]:
            raise idempotency.in_flight()
        if row["id"] is None:
            raise already_registered(email)
        return Registered(row["public_id"], session, issued_at)

    def check_login(self, email: str, password: str) -> Account | None:
        """The account when the password matches and the user is not disabled. Exactly one
        bcrypt check either way, so an unknown e-mail, a wrong password and a disabled user
        take the same time."""
        user = self.db.one("user_by_email", email=email)
        stored = user["password_hash"] if user else dummy_hash(self.rounds)
        matches = check_password(password, stored)
        return Account.of(user) if (user is not None and matches
                                    and not user["disabled"]) else None

    def start_session(self, account: Account, session: NewSession, lifetime: int) -> bool:
        """False when the user was disabled (or removed), or their password changed, since
        ``account.password_hash`` was checked: decided in the inserting statement itself."""
        return self.db.one("start_session", user_id=account.id,
                           password_hash=account.password_hash, session_id=session.id,
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
