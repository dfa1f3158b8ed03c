"""Password hashing with bcrypt. The 72-byte rule is the validator's, checked before we get here."""

from __future__ import annotations

from functools import cache

import bcrypt


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:  # a corrupt stored hash never matches
        return False


@cache
def dummy_hash(rounds: int) -> str:
    """A real hash at the configured cost, checked for unknown e-mails so that a login for an
    unknown address costs exactly as much as one with a wrong password."""
    return hash_password("not-a-password-of-anyone", rounds)
