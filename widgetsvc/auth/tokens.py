"""Access tokens: HS256 JWTs with ``exp``, ``iat``, ``sub``, ``jti`` (and an informational
``admin``), decoded with the algorithm pinned and every claim required (RFC 8725)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "admin"]
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
MAX_TOKEN_CHARS = 4096


class TokenInvalid(Exception):
    """Malformed, forged, of another algorithm, or missing a claim."""


class TokenExpired(Exception):
    """Well formed and correctly signed, but past its ``exp``."""


@dataclass(frozen=True)
class Claims:
    public_id: uuid.UUID
    jti: str
    issued_at: datetime
    expires_at: datetime
    admin: bool


def issue(
    public_id: uuid.UUID, admin: bool, *, secret: str, lifetime: int, now: datetime
) -> tuple[str, Claims]:
    issued_at = now.replace(microsecond=0)
    claims = Claims(
        public_id=public_id,
        jti=uuid.uuid4().hex,
        issued_at=issued_at,
        expires_at=issued_at + timedelta(seconds=lifetime),
        admin=bool(admin),
    )
    payload = {
        "exp": int(claims.expires_at.timestamp()),
        "iat": int(claims.issued_at.timestamp()),
        "sub": str(public_id),
        "admin": claims.admin,
        "jti": claims.jti,
    }
    token = jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"typ": "JWT"})
    return token, claims


def decode(token: str, *, secret: str, leeway: int = 0) -> Claims:
    """The token's claims, or TokenInvalid / TokenExpired.

    A token that verified once is remembered (per process, bounded): its signature and claims
    cannot change, so a repeat only needs the expiry check against the clock. That spares the
    HMAC and JSON work on every request of a client that reuses its token.
    """
    claims = _verify(token, secret, leeway)
    if claims.expires_at.timestamp() <= time.time() - leeway:
        raise TokenExpired()
    return claims


@lru_cache(maxsize=4096)
def _verify(token: str, secret: str, leeway: int) -> Claims:
    """Full verification (PyJWT, algorithm pinned, claims required). Failures raise and are
    therefore never cached."""
    if len(token) > MAX_TOKEN_CHARS or not _JWT_SHAPE.match(token):
        raise TokenInvalid("malformed")
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=leeway,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError) as exc:
        raise TokenInvalid(type(exc).__name__) from None
    sub, jti = payload.get("sub"), payload.get("jti")
    if not isinstance(sub, str) or not isinstance(jti, str) or not 1 <= len(jti) <= 64:
        raise TokenInvalid("bad sub or jti")
    if not isinstance(payload["admin"], bool):
        raise TokenInvalid("admin is not a boolean")
    try:
        public_id = uuid.UUID(sub)
    except ValueError:
        raise TokenInvalid("sub is not a UUID") from None
    exp, iat = payload["exp"], payload["iat"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat)):
        raise TokenInvalid("exp/iat are not numbers")
    try:
        expires_at = datetime.fromtimestamp(exp, UTC)
        issued_at = datetime.fromtimestamp(iat, UTC)
    except (OverflowError, OSError, ValueError):
        raise TokenInvalid("exp/iat out of range") from None
    return Claims(
        public_id=public_id,
        jti=jti,
        issued_at=issued_at,
        expires_at=expires_at,
        admin=payload["admin"],
    )
