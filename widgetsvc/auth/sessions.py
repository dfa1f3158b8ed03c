"""Sessions and their refresh tokens (docs/API.md §8.4): the token is 32 random bytes in unpadded
base64url, and only its SHA-256 is stored. A fast hash is enough for a random secret, so a
refresh costs no bcrypt (and no hashing slot)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

REFRESH_TOKEN_BYTES = 32
# What a refresh token this service issued can look like (43 to 512 of these); anything else
# is unknown without a database lookup. (The upper bound only keeps absurd input away from the
# hash.) Plain string code, no regular expression: linear in the input (docs/API.md §8.1).
_REFRESH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class NewSession:
    id: uuid.UUID
    refresh_token: str
    refresh_hash: bytes


def refresh_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def could_be_refresh_token(value: str) -> bool:
    return 43 <= len(value) <= 512 and _REFRESH_CHARS.issuperset(value)


def new_refresh_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)  # 43 characters, no padding
    return token, refresh_hash(token)


def new_session() -> NewSession:
    token, digest = new_refresh_token()
    return NewSession(uuid.uuid4(), token, digest)
