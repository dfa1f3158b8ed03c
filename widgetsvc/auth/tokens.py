"""Access tokens: JWTs (HS256, or EdDSA; see keys.py) with a ``kid`` header and the claims
``exp``, ``iat``, ``sub``, ``jti``, ``sid`` (and an informational ``admin``), decoded with the
key the ``kid`` names, that key's algorithm pinned, and every claim required (RFC 8725)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt

from widgetsvc.auth.keys import Keyring

REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "admin", "sid"]
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_TOKEN_CHARS = 4096


class TokenInvalid(Exception):
    """Malformed, forged, of another algorithm or key, or missing a claim."""


class TokenExpired(Exception):
    """Well formed and correctly signed, but past its ``exp``."""


@dataclass(frozen=True)
class Claims:
    public_id: uuid.UUID
    jti: str
    issued_at: datetime
    expires_at: datetime
    admin: bool
    sid: uuid.UUID


def issue(public_id: uuid.UUID, admin: bool, *, session_id: uuid.UUID, keys: Keyring,
          lifetime: int, now: datetime, jti: str | None = None) -> tuple[str, Claims]:
    """A signed access token; ``jti`` (default: random) is given only to issue one again, as
    an Idempotency-Key replay of register does (same claims: the same token)."""
    issued_at = now.replace(microsecond=0)
    claims = Claims(
        public_id=public_id,
        jti=jti or uuid.uuid4().hex,
        issued_at=issued_at,
        expires_at=issued_at + timedelta(seconds=lifetime),
        admin=bool(admin),
        sid=session_id,
    )
    payload = {
        "exp": int(claims.expires_at.timestamp()),
        "iat": int(claims.issued_at.timestamp()),
        "sub": str(public_id),
        "admin": claims.admin,
        "jti": claims.jti,
        "sid": str(session_id),
    }
    token = jwt.encode(payload, keys.signing_key, algorithm=keys.algorithm,
                       headers={"typ": "JWT", "kid": keys.kid})
    return token, claims


def decode(token: str, *, keys: Keyring, leeway: int = 0) -> Claims:
    """The token's claims, or TokenInvalid / TokenExpired.

    A token that verified once is remembered (per process, bounded): its signature and claims
    cannot change, so a repeat only needs the expiry check against the clock. That spares the
    signature and JSON work on every request of a client that reuses its token.
    """
    claims = _verify(token, keys, leeway)
    if claims.expires_at.timestamp() <= time.time() - leeway:
        raise TokenExpired()
    return claims


def _uuid(value: object, what: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise TokenInvalid(f"{what} is not a string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise TokenInvalid(f"{what} is not a UUID") from None


def _jwt_shape(token: str) -> bool:
    """Three dot-separated, non-empty base64url parts (plain string code: linear, docs/API.md
    §8.1)."""
    parts = token.split(".")
    return len(parts) == 3 and all(part and _BASE64URL.issuperset(part) for part in parts)


@lru_cache(maxsize=4096)
def _verify(token: str, keys: Keyring, leeway: int) -> Claims:
    """Full verification (PyJWT, the kid's key and algorithm only, claims required). Failures
    raise and are therefore never cached."""
    if len(token) > MAX_TOKEN_CHARS or not _jwt_shape(token):
        raise TokenInvalid("malformed")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = keys.verifiers.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid("no kid, or an unknown one")
        payload = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm],
            leeway=leeway,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError) as exc:
        raise TokenInvalid(type(exc).__name__) from None
    jti = payload.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 64:
        raise TokenInvalid("bad jti")
    if not isinstance(payload["admin"], bool):
        raise TokenInvalid("admin is not a boolean")
    public_id = _uuid(payload.get("sub"), "sub")
    sid = _uuid(payload.get("sid"), "sid")
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
        sid=sid,
    )
