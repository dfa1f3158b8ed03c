"""Sessions and their refresh tokens (docs/API.md §8.4).

A refresh token names its session and generation and carries a MAC under a server key, so
reuse detection needs no row per refresh: the session row keeps only the current generation
and the SHA-256 of its token's random part; an older generation of a live session that the
server signed is a reuse. Layout, in unpadded base64url (75 characters)::

    session id (16 bytes) | generation (8, big-endian) | random (16) | HMAC-SHA256 tag (16)

The random part (128 bits) is what the database checks, through its hash; the tag (128 bits,
under a key derived in ``keys.refresh_mac_keys``) is what lets a past generation be trusted
without a lookup of anything but the session. A fast hash is enough for a random secret, so a
refresh costs no bcrypt (and no hashing slot).

Legacy tokens (43 characters of 32 random bytes, issued before generations existed) are still
looked up by the SHA-256 of their text (``sessions.refresh_hash``) and their spent ones in
``spent_refresh_tokens``, until they expire or are rotated into the format above.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field

RANDOM_BYTES = 16
TAG_BYTES = 16
_BODY_BYTES = 16 + 8 + RANDOM_BYTES
TOKEN_BYTES = _BODY_BYTES + TAG_BYTES  # 56 bytes: 75 characters of base64url
TOKEN_LENGTH = 75
LEGACY_LENGTH = 43  # secrets.token_urlsafe(32), the format before generations
MAX_GENERATION = 2**63 - 1  # sessions.refresh_generation is a bigint
# base64url's alphabet, checked with plain string code (no regular expression on client
# input: docs/API.md §8.1).
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, eq=False)
class RefreshKeys:
    """The MAC keys of refresh tokens: the first signs, every one verifies."""

    keys: tuple[bytes, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one refresh MAC key is needed")

    def tag(self, body: bytes, key: bytes | None = None) -> bytes:
        return hmac.new(key or self.keys[0], body, hashlib.sha256).digest()[:TAG_BYTES]

    def verifies(self, body: bytes, tag: bytes) -> bool:
        return any(hmac.compare_digest(self.tag(body, key), tag) for key in self.keys)


@dataclass(frozen=True)
class Secret:
    """A refresh token's random part, made before the statement that stores its hash."""

    random: bytes = field(repr=False)

    @property
    def hash(self) -> bytes:
        return secret_hash(self.random)


@dataclass(frozen=True)
class Presented:
    """A refresh token of the current format that the server signed."""

    session_id: uuid.UUID
    generation: int
    hash: bytes


@dataclass(frozen=True)
class PresentedLegacy:
    """A 43-character token of the old format: only the database can tell if it is ours."""

    hash: bytes


@dataclass(frozen=True)
class NewSession:
    id: uuid.UUID
    refresh_token: str
    refresh_hash: bytes


def secret_hash(random: bytes) -> bytes:
    return hashlib.sha256(random).digest()


def legacy_hash(token: str) -> bytes:
    """What the old format stored: the SHA-256 of the whole token's text."""
    return hashlib.sha256(token.encode("ascii")).digest()


def new_secret() -> Secret:
    return Secret(secrets.token_bytes(RANDOM_BYTES))


def _is_base64url(value: str) -> bool:
    return all(char in _ALPHABET for char in value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token(keys: RefreshKeys, session_id: uuid.UUID, generation: int, secret: Secret) -> str:
    """The refresh token of ``generation`` of the session, with ``secret`` as its random part."""
    body = session_id.bytes + generation.to_bytes(8, "big") + secret.random
    return _b64(body + keys.tag(body))


def new_session(keys: RefreshKeys) -> NewSession:
    """A session id and its generation-0 refresh token (and the hash the row stores)."""
    session_id, secret = uuid.uuid4(), new_secret()
    return NewSession(session_id, token(keys, session_id, 0, secret), secret.hash)


def replayable_session(keys: RefreshKeys, session_id: uuid.UUID) -> NewSession:
    """The session of a register with an Idempotency-Key: its generation-0 random part is
    derived from the session id under the signing MAC key, so that a replay can give the very
    same refresh token without it ever being stored (only its hash is, as always)."""
    random = hmac.new(keys.keys[0], b"idempotent register\x00" + session_id.bytes,
                      hashlib.sha256).digest()[:RANDOM_BYTES]
    secret = Secret(random)
    return NewSession(session_id, token(keys, session_id, 0, secret), secret.hash)


def replayed_jti(session_id: uuid.UUID) -> str:
    """The access token id of that register's token (a fixed function of its session)."""
    return hashlib.sha256(b"idempotent register jti\x00" + session_id.bytes).hexdigest()[:32]


def parse(keys: RefreshKeys, value: str) -> Presented | PresentedLegacy | None:
    """What a presented refresh token claims, or None when it cannot be one of ours (wrong
    shape, a MAC no key verifies, a non-canonical encoding): no lookup needed then."""
    if len(value) == LEGACY_LENGTH and _is_base64url(value):
        return PresentedLegacy(legacy_hash(value))
    if len(value) != TOKEN_LENGTH or not _is_base64url(value):
        return None
    raw = base64.urlsafe_b64decode(value + "=")
    if _b64(raw) != value:  # the 2 spare bits of the last character must be zero
        return None
    body, tag = raw[:_BODY_BYTES], raw[_BODY_BYTES:]
    if not keys.verifies(body, tag):
        return None
    generation = int.from_bytes(body[16:24], "big")
    if generation >= MAX_GENERATION:
        return None
    return Presented(uuid.UUID(bytes=body[:16]), generation, secret_hash(body[24:]))
