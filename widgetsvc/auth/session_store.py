"""The sessions store: refresh-token rotation (sql/queries/sessions.sql) and the logouts
(revoke_token in tokens.sql, logout_all). The token format itself is ``auth/sessions.py``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, NamedTuple

from widgetsvc.auth import sessions
from widgetsvc.auth.caller import Caller, checked_rows
from widgetsvc.db import Database

Refusal = Literal["invalid", "reused"]


class Rotated(NamedTuple):
    """A refreshed session: its next generation, and its user's id and admin flag now."""

    session_id: uuid.UUID
    generation: int
    public_id: uuid.UUID
    admin: bool


class SessionStore:
    def __init__(self, db: Database):
        self._db = db

    def rotate(self, presented: sessions.Presented | sessions.PresentedLegacy,
               secret: sessions.Secret, lifetime: int) -> Rotated | Refusal:
        """Spend the presented refresh token for the next generation (whose random part is
        ``secret``), or say why not: ``"invalid"`` (unknown, expired, revoked) or
        ``"reused"`` (an older generation: its whole session is revoked now)."""
        if isinstance(presented, sessions.PresentedLegacy):
            row = self._db.one("rotate_legacy_refresh_token", hash=presented.hash,
                               new_hash=secret.hash, lifetime=lifetime)
            if row is None:
                reused = self._db.one("legacy_refresh_token_reused",
                                      hash=presented.hash)["reused"]
                return "reused" if reused else "invalid"
        else:
            row = self._db.one("refresh_session", session_id=presented.session_id,
                               generation=presented.generation, hash=presented.hash,
                               new_hash=secret.hash, lifetime=lifetime)
            if row is None:
                return "invalid"
            if not row["rotated"]:
                return "reused"
        return Rotated(row["session_id"], row["generation"], row["public_id"], row["admin"])

    def revoke_token(self, caller: Caller, expires_at: datetime) -> None:
        """Logout: the caller's access token (and its session) revoked, checked in the same
        statement (a second logout of the token is its 401)."""
        checked_rows(self._db, caller, "revoke_token", expires_at=expires_at)

    def revoke_all(self, caller: Caller) -> None:
        """Logout everywhere: every session of the caller's user."""
        checked_rows(self._db, caller, "logout_all")
