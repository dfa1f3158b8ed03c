"""Refresh storage grows with live sessions, never with refreshes (docs/API.md §8.4, issue 18
(c)): a refresh token names its session and generation under a server MAC, the session row
keeps only the current generation's hash, and an older generation is a reuse. Forged tokens
are invalid and revoke nothing; legacy (pre-0009) tokens still refresh, once, into the new
format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import replace

import pytest
import webtest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.helpers import API, PASSWORD, SECRET, bearer
from tests.helpers_sql import legacy_session, run_sql
from widgetsvc.app import create_app

LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
USER = f"{API}/auth/user"
EMAIL = "refresher@example.com"
INVALID = {"status": "fail", "message": "Invalid refresh token. Please log in again."}
REUSED = {"status": "fail", "message": "Refresh token reused. Please log in again."}
BLACKLISTED = {"message": "Token blacklisted. Please log in again."}
OTHER_SECRET = "another-secret-key-that-is-long-enough-9876543210"
REFRESHES = 1000
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode(token: str) -> tuple[uuid.UUID, int, bytes, bytes]:
    """(session id, generation, random part, MAC) of a refresh token, as docs/API.md §8.4
    lays it out; written here independently of widgetsvc.auth.sessions."""
    assert len(token) == 75 and set(token) <= set(ALPHABET), token
    raw = base64.urlsafe_b64decode(token + "=")
    return uuid.UUID(bytes=raw[:16]), int.from_bytes(raw[16:24], "big"), raw[24:40], raw[40:]


def mac_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"widgetsvc refresh-token MAC v1", hashlib.sha256).digest()


def make(session_id: uuid.UUID, generation: int, random: bytes, *,
         secret: str = SECRET) -> str:
    body = session_id.bytes + generation.to_bytes(8, "big") + random
    return b64(body + hmac.new(mac_key(secret.encode()), body, hashlib.sha256).digest()[:16])


def log_in(app) -> dict:
    return app.post_json(LOGIN, {"email": EMAIL, "password": PASSWORD}).json


def refresh(app, token: str, status: int = 200):
    return app.post_json(REFRESH, {"refresh_token": token}, status=status)


def row_of(db, session_id) -> dict:
    (row,) = [r for r in run_sql(db, "sess_rows", email=EMAIL) if r["id"] == session_id]
    return row


@pytest.fixture
def account(users):
    return users.create(EMAIL, PASSWORD, admin=False)


def test_a_thousand_refreshes_store_nothing_more(app, db, account):
    login = log_in(app)
    session_id = decode(login["refresh_token"])[0]
    before = run_sql(db, "sess_table_rows")[0]
    token, started = login["refresh_token"], time.monotonic()
    for _ in range(REFRESHES):
        token = refresh(app, token).json["refresh_token"]
    elapsed = time.monotonic() - started
    after = run_sql(db, "sess_table_rows")[0]
    print(f"\n{REFRESHES} refreshes in {elapsed:.2f} s; rows before {before}, after {after}")
    assert after == before  # sessions, spent_refresh_tokens, users, revoked_tokens
    assert before["spent_refresh_tokens"] == 0
    row = row_of(db, session_id)
    assert row["refresh_generation"] == REFRESHES == decode(token)[1]
    assert bytes(row["refresh_hash"]) == hashlib.sha256(decode(token)[2]).digest()
    assert row["revoked_at"] is None


def test_an_older_generation_revokes_the_session(app, db, account):
    other = log_in(app)  # another session of the same user: untouched
    chain = [log_in(app)]
    for _ in range(3):
        chain.append(refresh(app, chain[-1]["refresh_token"]).json)
    session_id = decode(chain[0]["refresh_token"])[0]
    assert [decode(body["refresh_token"])[:2] for body in chain] == [
        (session_id, generation) for generation in range(4)]
    assert refresh(app, chain[1]["refresh_token"], status=401).json == REUSED
    assert row_of(db, session_id)["revoked_at"] is not None
    # the whole session: its newest refresh token and every access token
    assert refresh(app, chain[3]["refresh_token"], status=401).json == INVALID
    for body in chain:
        assert app.get(USER, headers=bearer(body["access_token"]), status=401).json \
            == BLACKLISTED
    # an older generation stays a reuse while the session lives; nothing was stored per refresh
    assert refresh(app, chain[0]["refresh_token"], status=401).json == REUSED
    assert run_sql(db, "sess_table_rows")[0]["spent_refresh_tokens"] == 0
    refresh(app, other["refresh_token"], status=200)


def flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "="))
    raw[index] ^= 0x01
    return b64(bytes(raw))


def forgeries(current: str, older: str, theirs: str) -> dict[str, str]:
    session_id, generation, random, tag = decode(current)
    their_id = decode(theirs)[0]
    old_body = base64.urlsafe_b64decode(older + "=")
    return {
        # a MAC under a key the server does not have, for an older generation (a reuse if the
        # server believed it) and for the current one
        "other-key-older": make(session_id, generation - 1, decode(older)[2],
                                secret=OTHER_SECRET),
        "other-key-current": make(session_id, generation, random, secret=OTHER_SECRET),
        # one bit flipped in each part
        **{f"flipped-{part}": flip(current, index)
           for part, index in (("session", 3), ("generation", 23), ("random", 30),
                               ("mac", 50))},
        "flipped-older-generation": flip(older, 23),
        # the session id swapped for another live session's, the rest kept
        "their-session": b64(their_id.bytes + base64.urlsafe_b64decode(current + "=")[16:]),
        "their-session-older": b64(their_id.bytes + old_body[16:]),
        "mac-truncated": current[:-1],
        "mac-missing": b64(base64.urlsafe_b64decode(current + "=")[:40]),
        # the last character's 2 spare bits set: the same bytes, not our encoding
        "non-canonical": current[:-1] + ALPHABET[ALPHABET.index(current[-1]) | 1],
        "tag-zeroed": b64(base64.urlsafe_b64decode(current + "=")[:40] + bytes(16)),
    }


def test_forged_tokens_are_invalid_and_revoke_nothing(app, db, account):
    theirs = log_in(app)
    older = log_in(app)
    current = refresh(app, older["refresh_token"]).json
    rows = run_sql(db, "sess_rows", email=EMAIL)
    for name, forged in forgeries(current["refresh_token"], older["refresh_token"],
                                  theirs["refresh_token"]).items():
        assert forged not in (current["refresh_token"], older["refresh_token"]), name
        assert refresh(app, forged, status=401).json == INVALID, name
    assert run_sql(db, "sess_rows", email=EMAIL) == rows  # nothing revoked, nothing rotated
    refresh(app, theirs["refresh_token"], status=200)
    refresh(app, current["refresh_token"], status=200)


def test_the_mac_alone_is_not_enough(app, db, account):
    """Even under the server's own key, a token is current only with the random part whose
    hash the row holds: the key does not mint sessions (and a generation from the future is
    no reuse)."""
    login = log_in(app)
    session_id, generation, random, _ = decode(login["refresh_token"])
    guessed = make(session_id, generation, bytes(16))
    future = make(session_id, generation + 1, random)
    for token in (guessed, future):
        assert refresh(app, token, status=401).json == INVALID
    assert row_of(db, session_id)["revoked_at"] is None
    refresh(app, login["refresh_token"], status=200)


def test_a_legacy_token_refreshes_once_into_the_new_format(app, db, account):
    session_id, legacy = legacy_session(db, EMAIL)
    body = refresh(app, legacy).json
    assert decode(body["refresh_token"])[:2] == (uuid.UUID(session_id), 1)
    assert app.get(USER, headers=bearer(body["access_token"])).json["email"] == EMAIL
    # its hash is kept as spent, once: the next refreshes are of the new format
    newer = refresh(app, body["refresh_token"]).json
    assert decode(newer["refresh_token"])[:2] == (uuid.UUID(session_id), 2)
    assert run_sql(db, "sess_table_rows")[0]["spent_refresh_tokens"] == 1
    # the legacy token again is a reuse: the session is revoked
    assert refresh(app, legacy, status=401).json == REUSED
    assert refresh(app, newer["refresh_token"], status=401).json == INVALID


def test_keys_rotate_like_the_access_token_keys(config, db, clock, account):
    def service(**overrides):
        return webtest.TestApp(create_app(replace(config, **overrides), db=db, clock=clock))

    before = log_in(service())
    rotated = service(secret_key=OTHER_SECRET, previous_secret_keys=(SECRET,))
    after = refresh(rotated, before["refresh_token"]).json
    # the new token is MAC'd under the new secret's key, and verifies only where it is known
    session_id, generation, random, _ = decode(after["refresh_token"])
    assert after["refresh_token"] == make(session_id, generation, random, secret=OTHER_SECRET)
    assert refresh(service(), after["refresh_token"], status=401).json == INVALID
    # once the old secret is dropped, its tokens are invalid (and revoke nothing)
    stale = log_in(service())
    assert refresh(service(secret_key=OTHER_SECRET), stale["refresh_token"],
                   status=401).json == INVALID
    refresh(service(), stale["refresh_token"], status=200)


def test_eddsa_without_a_secret_derives_its_refresh_key_from_the_signing_key(
        config, db, clock, account, tmp_path):
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "signing.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    eddsa = webtest.TestApp(create_app(replace(
        config, token_algorithm="EdDSA", signing_key_file=str(pem), secret_key=""),
        db=db, clock=clock))
    login = log_in(eddsa)
    body = refresh(eddsa, login["refresh_token"]).json
    session_id, generation, random, _ = decode(body["refresh_token"])
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    expected_body = session_id.bytes + generation.to_bytes(8, "big") + random
    expected_tag = hmac.new(mac_key(seed), expected_body, hashlib.sha256).digest()[:16]
    assert body["refresh_token"] == b64(expected_body + expected_tag)
    # switching to EdDSA with the secret still set keeps the secret's refresh tokens valid
    hs = log_in(webtest.TestApp(create_app(config, db=db, clock=clock)))
    both = webtest.TestApp(create_app(replace(
        config, token_algorithm="EdDSA", signing_key_file=str(pem)), db=db, clock=clock))
    refresh(both, hs["refresh_token"], status=200)


def test_the_refresh_key_is_not_the_access_token_key():
    """A refresh MAC key is derived, never the secret itself: an HS256 signature over the same
    bytes cannot pass for a refresh MAC."""
    from widgetsvc.auth import keys
    from widgetsvc.config import Config

    config = Config.from_env({"DATABASE_URL": "postgresql:///x", "SECRET_KEY": SECRET,
                              "PREVIOUS_SECRET_KEYS": OTHER_SECRET, "WIDGETSVC_ENV": "test"})
    derived = keys.refresh_mac_keys(config).keys
    assert derived == (mac_key(SECRET.encode()), mac_key(OTHER_SECRET.encode()))
    assert SECRET.encode() not in derived
