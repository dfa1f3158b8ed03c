"""Signing keys (docs/API.md §8.6): a kid on every token, key rotation with PREVIOUS_SECRET_KEYS,
optional EdDSA with the JWKS endpoint, and no algorithm confusion in either direction
(RFC 8725 §3.1): each key verifies only with its own algorithm."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
import webtest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.helpers import API, DROP, KID, PASSWORD, SECRET, bearer, now_ts, sign
from tests.helpers import claims_for as claims
from widgetsvc.app import create_app
from widgetsvc.auth import keys
from widgetsvc.config import Config, ConfigError
from widgetsvc.ops import cli

USER = f"{API}/auth/user"
LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
JWKS = f"{API}/auth/jwks.json"
EMAIL = "keys@example.com"
INVALID = {"message": "Invalid token. Please log in again."}
OLD_SECRET = "the-previous-secret-key-of-this-service-0123456789"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_key(directory: Path, name: str) -> tuple[Ed25519PrivateKey, Path, Path]:
    """An Ed25519 key pair as PEM files: (key, private file, public file)."""
    key = Ed25519PrivateKey.generate()
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, private, public


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def okp_kid(key: Ed25519PrivateKey) -> str:
    """RFC 7638 thumbprint, computed here independently of widgetsvc.auth.keys."""
    text = '{"crv":"Ed25519","kty":"OKP","x":"' + b64url(raw_public(key)) + '"}'
    return b64url(hashlib.sha256(text.encode()).digest())


@pytest.fixture
def account(users):
    return users.create(EMAIL, PASSWORD, admin=False)


@pytest.fixture
def service(config, db, clock):
    """A TestApp over create_app with configuration overrides."""
    def make(**overrides) -> webtest.TestApp:
        return webtest.TestApp(create_app(replace(config, **overrides), db=db, clock=clock))
    return make


@pytest.fixture
def ed(tmp_path):
    return write_key(tmp_path, "current")


@pytest.fixture
def eddsa(service, ed):
    return service(token_algorithm="EdDSA", signing_key_file=str(ed[1]), secret_key="")


def token_of(app) -> str:
    return app.post_json(LOGIN, {"email": EMAIL, "password": PASSWORD}).json["access_token"]


# -- HS256 -------------------------------------------------------------------------------------

def test_hs256_tokens_carry_the_thumbprint_of_their_key_as_kid(app, account):
    token = token_of(app)
    text = '{"k":"' + b64url(SECRET.encode()) + '","kty":"oct"}'
    expected = b64url(hashlib.sha256(text.encode()).digest())
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": expected}
    assert expected == KID


def test_the_jwks_is_empty_with_hs256_and_needs_no_token(app):
    resp = app.get(JWKS, status=200)
    assert resp.json == {"keys": []}
    assert resp.headers["Content-Type"] == "application/json"
    # public keys, no user data: cacheable for a while (every other API answer is no-store)
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    assert app.head(JWKS, status=200).body == b""


def test_a_token_without_a_kid_is_invalid(app, account):
    good = claims(account.public_id)
    no_kid = sign({"typ": "JWT", "alg": "HS256", "kid": DROP}, good)
    assert "kid" not in jwt.get_unverified_header(no_kid)
    assert app.get(USER, headers=bearer(no_kid), status=401).json == INVALID
    # the control: the same token with the kid is fine
    app.get(USER, headers=bearer(sign({"typ": "JWT", "alg": "HS256"}, good)), status=200)


@pytest.mark.parametrize("kid", ["", "unknown", 7, None, ["x"], {"k": "v"}, "x" * 5000])
def test_an_unknown_or_odd_kid_is_invalid(app, account, kid):
    token = sign({"typ": "JWT", "alg": "HS256", "kid": kid}, claims(account.public_id))
    assert app.get(USER, headers=bearer(token), status=401).json == INVALID


def test_rotation_previous_secret_keys_still_verify(service, account):
    old = service(secret_key=OLD_SECRET)
    old_token = token_of(old)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    rotated = service(previous_secret_keys=(OLD_SECRET,))
    assert rotated.get(USER, headers=bearer(old_token), status=200).json["email"] == EMAIL
    new_token = token_of(rotated)
    assert jwt.get_unverified_header(new_token)["kid"] == KID != old_kid
    # once the old key is dropped from the list, its tokens are invalid
    assert service().get(USER, headers=bearer(old_token), status=401).json == INVALID
    # and an old service never accepted the new key's tokens
    assert old.get(USER, headers=bearer(new_token), status=401).json == INVALID


def test_rotation_keeps_refresh_working(service, account):
    old = service(secret_key=OLD_SECRET)
    login = old.post_json(LOGIN, {"email": EMAIL, "password": PASSWORD}).json
    rotated = service(previous_secret_keys=(OLD_SECRET,))
    body = rotated.post_json(REFRESH, {"refresh_token": login["refresh_token"]}).json
    assert jwt.get_unverified_header(body["access_token"])["kid"] == KID


# -- EdDSA -------------------------------------------------------------------------------------

def test_eddsa_tokens_and_the_jwks(eddsa, ed, account):
    key, _, _ = ed
    token = token_of(eddsa)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "typ": "JWT",
                                                "kid": okp_kid(key)}
    assert eddsa.get(USER, headers=bearer(token)).json["email"] == EMAIL
    jwks = eddsa.get(JWKS, status=200).json
    assert jwks == {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public(key)),
                              "kid": okp_kid(key), "alg": "EdDSA", "use": "sig"}]}
    # another service verifies the token from the JWKS alone, with no secret
    (published,) = jwt.PyJWKSet.from_dict(jwks).keys
    decoded = jwt.decode(token, published.key, algorithms=["EdDSA"])
    assert decoded["sub"] == str(account.public_id)


def test_previous_public_keys_verify_and_are_published(service, tmp_path, ed, account):
    old_key, old_private, old_public = write_key(tmp_path, "old")
    before = service(token_algorithm="EdDSA", signing_key_file=str(old_private))
    old_token = token_of(before)
    after = service(token_algorithm="EdDSA", signing_key_file=str(ed[1]),
                    previous_public_key_files=(str(old_public),))
    assert after.get(USER, headers=bearer(old_token), status=200).json["email"] == EMAIL
    kids = [k["kid"] for k in after.get(JWKS).json["keys"]]
    assert kids == [okp_kid(ed[0]), okp_kid(old_key)]
    without = service(token_algorithm="EdDSA", signing_key_file=str(ed[1]))
    assert without.get(USER, headers=bearer(old_token), status=401).json == INVALID


def test_switching_from_hs256_to_eddsa_logs_nobody_out(app, service, ed, account):
    hs_token = token_of(app)
    switched = service(token_algorithm="EdDSA", signing_key_file=str(ed[1]))
    assert switched.get(USER, headers=bearer(hs_token), status=200).json["email"] == EMAIL
    assert switched.get(JWKS).json["keys"][0]["kid"] == okp_kid(ed[0])  # no secret in it
    assert len(switched.get(JWKS).json["keys"]) == 1
    # without SECRET_KEY, the HS256 token is just invalid
    eddsa_only = service(token_algorithm="EdDSA", signing_key_file=str(ed[1]), secret_key="")
    assert eddsa_only.get(USER, headers=bearer(hs_token), status=401).json == INVALID


# -- algorithm confusion (RFC 8725 §3.1), both directions -------------------------------------

def public_key_encodings(key: Ed25519PrivateKey) -> dict[str, bytes]:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"raw": raw_public(key), "pem": pem, "der": der,
            "x": b64url(raw_public(key)).encode(), "jwk": json.dumps(
                {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public(key))}).encode()}


@pytest.mark.parametrize("encoding", ["raw", "pem", "der", "x", "jwk"])
@pytest.mark.parametrize("with_secret", [False, True], ids=["eddsa-only", "with-secret"])
def test_an_hs256_token_keyed_with_the_public_key_is_invalid(service, ed, account, encoding,
                                                             with_secret):
    """The classic confusion: HMAC over the token with the (public!) verification key as the
    secret, naming the EdDSA key's kid."""
    key = ed[0]
    app = service(token_algorithm="EdDSA", signing_key_file=str(ed[1]),
                  secret_key=SECRET if with_secret else "")
    good = claims(account.public_id)
    hmac_key = public_key_encodings(key)[encoding]
    for kid in (okp_kid(key), KID):
        token = sign({"typ": "JWT", "alg": "HS256", "kid": kid}, good, key=hmac_key)
        assert app.get(USER, headers=bearer(token), status=401).json == INVALID
    # the control: the real key, the real algorithm
    real = jwt.encode(good, key, algorithm="EdDSA", headers={"kid": okp_kid(key)})
    app.get(USER, headers=bearer(real), status=200)


def test_an_eddsa_token_is_invalid_at_an_hs256_service(app, ed, account):
    key = ed[0]
    good = claims(account.public_id)
    for kid in (KID, okp_kid(key)):
        token = jwt.encode(good, key, algorithm="EdDSA", headers={"kid": kid})
        assert app.get(USER, headers=bearer(token), status=401).json == INVALID


def test_an_eddsa_token_naming_the_secrets_kid_is_invalid_at_an_eddsa_service(service, ed,
                                                                              account):
    app = service(token_algorithm="EdDSA", signing_key_file=str(ed[1]))
    good = claims(account.public_id)
    token = jwt.encode(good, ed[0], algorithm="EdDSA", headers={"kid": KID})
    assert app.get(USER, headers=bearer(token), status=401).json == INVALID
    # while the secret's own HS256 tokens are fine
    app.get(USER, headers=bearer(sign({"typ": "JWT", "alg": "HS256"}, good)), status=200)


def test_an_eddsa_token_of_another_key_is_invalid(eddsa, tmp_path, ed, account):
    stranger, _, _ = write_key(tmp_path, "stranger")
    good = claims(account.public_id)
    for kid in (okp_kid(ed[0]), okp_kid(stranger)):
        token = jwt.encode(good, stranger, algorithm="EdDSA", headers={"kid": kid})
        assert eddsa.get(USER, headers=bearer(token), status=401).json == INVALID


def test_an_expired_eddsa_token_says_so(eddsa, ed, account):
    now = now_ts()
    token = jwt.encode(claims(account.public_id, iat=now - 2000, exp=now - 1000), ed[0],
                       algorithm="EdDSA", headers={"kid": okp_kid(ed[0])})
    assert eddsa.get(USER, headers=bearer(token), status=401).json == {
        "message": "Access token expired. Please log in again."}


# -- configuration -----------------------------------------------------------------------------

def env(**values: str) -> dict[str, str]:
    return {"DATABASE_URL": "postgresql:///x", "WIDGETSVC_ENV": "test", "SECRET_KEY": SECRET,
            **values}


def key_error(**values: str) -> str:
    with pytest.raises(ConfigError) as caught:
        keys.load(Config.from_env(env(**values)))
    return str(caught.value)


def test_key_configuration_errors(tmp_path, ed):
    rsa_like = tmp_path / "ec.pem"
    rsa_like.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    missing = tmp_path / "missing.pem"
    assert key_error(TOKEN_ALGORITHM="RS256") == (
        "TOKEN_ALGORITHM=RS256: unsupported algorithm (HS256 or EdDSA)")
    assert key_error(TOKEN_ALGORITHM="EdDSA") == (
        "SIGNING_KEY_FILE=: not set, and TOKEN_ALGORITHM=EdDSA needs it (an Ed25519 private key "
        "in PEM)")
    key_rule = ("(a readable Ed25519 private key in unencrypted PEM, e.g. from openssl genpkey "
                "-algorithm ed25519)")
    assert key_error(TOKEN_ALGORITHM="EdDSA", SIGNING_KEY_FILE=str(missing)) == (
        f"SIGNING_KEY_FILE={missing}: cannot read it: No such file or directory {key_rule}")
    assert key_error(TOKEN_ALGORITHM="EdDSA", SIGNING_KEY_FILE=str(garbage)) == (
        f"SIGNING_KEY_FILE={garbage}: not an unencrypted PEM private key {key_rule}")
    assert key_error(TOKEN_ALGORITHM="EdDSA", SIGNING_KEY_FILE=str(rsa_like)) == (
        f"SIGNING_KEY_FILE={rsa_like}: not an Ed25519 key {key_rule}")
    assert key_error(TOKEN_ALGORITHM="EdDSA", SIGNING_KEY_FILE=str(ed[1]),
                     PREVIOUS_PUBLIC_KEY_FILES=f"{ed[2]},{garbage}") == (
        f"PREVIOUS_PUBLIC_KEY_FILES={garbage}: not a PEM public key (comma-separated readable "
        "Ed25519 public keys in PEM)")
    # EdDSA needs no SECRET_KEY
    keyring = keys.load(Config.from_env(env(TOKEN_ALGORITHM="EdDSA", SIGNING_KEY_FILE=str(ed[1]),
                                            SECRET_KEY="")))
    assert keyring.algorithm == "EdDSA" and len(keyring.verifiers) == 1


def test_production_wants_long_previous_secrets():
    production = {"DATABASE_URL": "postgresql:///x", "SECRET_KEY": SECRET,
                  "PREVIOUS_SECRET_KEYS": f"{OLD_SECRET}, short"}
    with pytest.raises(ConfigError, match=r"^PREVIOUS_SECRET_KEYS=<\d+ bytes, not shown>: a key "
                                          r"is too short for production \(each at least 32 "
                                          r"bytes\)$"):
        Config.from_env(production)
    config = Config.from_env({**production, "PREVIOUS_SECRET_KEYS": f" {OLD_SECRET} ,,"})
    assert config.previous_secret_keys == (OLD_SECRET,)


def test_bin_serve_refuses_an_unusable_key_before_starting(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgresql:///nowhere")
    monkeypatch.setenv("WIDGETSVC_ENV", "test")
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("TOKEN_ALGORITHM", "EdDSA")
    monkeypatch.setenv("SIGNING_KEY_FILE", str(tmp_path / "absent.pem"))
    assert cli.main(["serve"]) == 1
    assert capsys.readouterr().err == (
        f"widgetsvc: SIGNING_KEY_FILE={tmp_path / 'absent.pem'}: cannot read it: "
        "No such file or directory (a readable Ed25519 private key in unencrypted PEM, e.g. "
        "from openssl genpkey -algorithm ed25519)\n")
