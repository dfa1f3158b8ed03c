"""The token signing keys (docs/API.md §8.6): one key signs, older ones still verify, and each key
verifies only with its own algorithm (RFC 8725 §3.1).

Every key has a ``kid``: its RFC 7638 JWK thumbprint (a SHA-256, so it reveals nothing usable
about a secret). A token names its key in the ``kid`` header; decoding takes that key and its
algorithm alone, so an HS256 token can never be checked against an Ed25519 public key, nor an
EdDSA token against an HMAC secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from widgetsvc.auth.sessions import RefreshKeys
from widgetsvc.config import EDDSA, HS256, Config, ConfigError, bad

# Refresh tokens are MAC'd under keys derived from the configured secrets with this label, never
# under the secrets themselves: an HS256 access-token key and a refresh MAC key are never equal.
REFRESH_MAC_LABEL = b"widgetsvc refresh-token MAC v1"
# List cursors (docs/API.md §8.7) are MAC'd under keys derived the same way with their own
# label: a cursor tag can never be replayed as a refresh-token tag, nor the reverse.
CURSOR_MAC_LABEL = b"widgetsvc list-cursor MAC v1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _thumbprint(members: dict[str, str]) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, no whitespace."""
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, eq=False)
class VerifyKey:
    kid: str
    algorithm: str
    key: Any = field(repr=False)  # an HMAC secret (bytes) or an Ed25519PublicKey

    def jwk(self) -> dict[str, str] | None:
        """The public JWK (RFC 8037 OKP) of an Ed25519 key; None for a secret."""
        if self.algorithm != EDDSA:
            return None
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(_raw_public(self.key)),
                "kid": self.kid, "alg": EDDSA, "use": "sig"}


def hmac_key(secret: str) -> VerifyKey:
    raw = secret.encode("utf-8")
    return VerifyKey(_thumbprint({"kty": "oct", "k": _b64url(raw)}), HS256, raw)


def ed25519_key(public: Ed25519PublicKey) -> VerifyKey:
    x = _b64url(_raw_public(public))
    return VerifyKey(_thumbprint({"crv": "Ed25519", "kty": "OKP", "x": x}), EDDSA, public)


@dataclass(frozen=True, eq=False)
class Keyring:
    """The signing key and every key that verifies, by kid. Compared by identity (it is a
    cache key of the token verifier)."""

    kid: str
    algorithm: str
    signing_key: Any = field(repr=False)
    verifiers: dict[str, VerifyKey] = field(repr=False)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JWKS (RFC 7517): empty when only secrets are in use."""
        return {"keys": [jwk for key in self.verifiers.values() if (jwk := key.jwk())]}


_ALLOWED = {
    "SIGNING_KEY_FILE": "a readable Ed25519 private key in unencrypted PEM, e.g. from "
                        "openssl genpkey -algorithm ed25519",
    "PREVIOUS_PUBLIC_KEY_FILES": "comma-separated readable Ed25519 public keys in PEM",
}


def _read_pem(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise bad(what, path, f"cannot read it: {exc.strerror}", _ALLOWED[what]) from None


def _private_key(path: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read_pem(path, "SIGNING_KEY_FILE"), None)
    except (ValueError, TypeError):
        raise bad("SIGNING_KEY_FILE", path, "not an unencrypted PEM private key",
                  _ALLOWED["SIGNING_KEY_FILE"]) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise bad("SIGNING_KEY_FILE", path, "not an Ed25519 key", _ALLOWED["SIGNING_KEY_FILE"])
    return key


def _public_key(path: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read_pem(path, "PREVIOUS_PUBLIC_KEY_FILES"))
    except (ValueError, TypeError):
        raise bad("PREVIOUS_PUBLIC_KEY_FILES", path, "not a PEM public key",
                  _ALLOWED["PREVIOUS_PUBLIC_KEY_FILES"]) from None
    if not isinstance(key, Ed25519PublicKey):
        raise bad("PREVIOUS_PUBLIC_KEY_FILES", path, "not an Ed25519 key",
                  _ALLOWED["PREVIOUS_PUBLIC_KEY_FILES"])
    return key


@cache
def for_config(config: Config) -> Keyring:
    """``load``, once per configuration (the key files are read at startup, not per request)."""
    return load(config)


def load(config: Config) -> Keyring:
    """The keyring the configuration describes (ConfigError for an unusable key file).

    HS256: SECRET_KEY signs, PREVIOUS_SECRET_KEYS verify. EdDSA: the SIGNING_KEY_FILE key
    signs, it and PREVIOUS_PUBLIC_KEY_FILES verify, and SECRET_KEY / PREVIOUS_SECRET_KEYS (when
    set) still verify HS256 tokens, so switching from HS256 to EdDSA logs nobody out."""
    if config.token_algorithm != EDDSA:
        return hmac_keyring(config.secret_key, config.previous_secret_keys)
    private = _private_key(config.signing_key_file)
    current = ed25519_key(private.public_key())
    secrets = [config.secret_key] if config.secret_key else []
    return _keyring(current, private, [
        current,
        *(ed25519_key(_public_key(path)) for path in config.previous_public_key_files),
        *(hmac_key(secret) for secret in [*secrets, *config.previous_secret_keys]),
    ])


def hmac_keyring(secret: str, previous: tuple[str, ...] = ()) -> Keyring:
    """HS256 with ``secret`` signing and ``previous`` verifying (what ``load`` builds)."""
    current = hmac_key(secret)
    return _keyring(current, current.key, [current, *map(hmac_key, previous)])


def _keyring(current: VerifyKey, signing: Any, verifiers: list[VerifyKey]) -> Keyring:
    by_kid: dict[str, VerifyKey] = {}
    for key in verifiers:
        by_kid.setdefault(key.kid, key)
    return Keyring(current.kid, current.algorithm, signing, by_kid)


def _refresh_key(secret: bytes, label: bytes = REFRESH_MAC_LABEL) -> bytes:
    return hmac.new(secret, label, hashlib.sha256).digest()


@cache
def refresh_keys_for_config(config: Config) -> RefreshKeys:
    """``refresh_mac_keys``, once per configuration."""
    return refresh_mac_keys(config)


def refresh_keys_from_secrets(*secrets: str) -> RefreshKeys:
    """The refresh MAC keys of an HS256 configuration with these secrets (the first signs)."""
    return RefreshKeys(tuple(_refresh_key(secret.encode("utf-8")) for secret in secrets))


@cache
def cursor_keys_for_config(config: Config) -> RefreshKeys:
    """The list cursors' MAC keys: derived from the same secrets as ``refresh_mac_keys``
    (so a rotation keeps issued cursors valid while the old secret still verifies), under
    ``CURSOR_MAC_LABEL``."""
    return refresh_mac_keys(config, CURSOR_MAC_LABEL)


def cursor_keys_from_secrets(*secrets: str) -> RefreshKeys:
    """The cursor MAC keys of an HS256 configuration with these secrets (the first signs)."""
    return RefreshKeys(tuple(_refresh_key(secret.encode("utf-8"), CURSOR_MAC_LABEL)
                             for secret in secrets))


def refresh_mac_keys(config: Config, label: bytes = REFRESH_MAC_LABEL) -> RefreshKeys:
    """The refresh tokens' MAC keys (docs/API.md §8.4): derived from ``SECRET_KEY`` (which signs)
    and ``PREVIOUS_SECRET_KEYS`` (which still verify), so rotating the secret as for access
    tokens keeps refresh tokens valid. With ``TOKEN_ALGORITHM=EdDSA`` the Ed25519 signing key
    also yields one: it signs when no ``SECRET_KEY`` is set (then retiring that Ed25519 key
    ends the refresh tokens it signed, since a public key cannot verify a MAC)."""
    derived = [_refresh_key(config.secret_key.encode("utf-8"), label)] if config.secret_key else []
    if config.token_algorithm == EDDSA and config.signing_key_file:
        seed = _private_key(config.signing_key_file).private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption())
        derived.append(_refresh_key(seed, label))
    derived += [_refresh_key(secret.encode("utf-8"), label)
                for secret in config.previous_secret_keys]
    if not derived:
        raise ConfigError("refresh tokens need SECRET_KEY (or, with EdDSA, SIGNING_KEY_FILE)")
    return RefreshKeys(tuple(dict.fromkeys(derived)))
