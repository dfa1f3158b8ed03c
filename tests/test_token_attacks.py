"""Attacks on access tokens (RFC 8725, docs/API.md §4 and §6): every one is a 401 in the contract's
exact shape, never a 500, and never lets the attacker in.

Tokens are built by hand (header, payload and signature) so that each attack is exactly the one
named; ``test_the_forgery_kit_makes_valid_tokens`` proves the kit itself makes tokens the service
accepts, so every rejection below is caused by the attack, not by a broken forgery.
tests/test_auth_api.py covers the everyday bad tokens; this file is the attacker's view.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import uuid

import pytest

from tests.helpers import (
    ADMIN_REALM,
    DROP,
    EXPIRED,
    INVALID,
    LOGOUT,
    NOT_ADMIN,
    PASSWORD,
    REVOKED,
    SECRET,
    USER,
    USER_REALM,
    WIDGETS,
    assert_no_token,
    assert_token_error,
    b64url,
    bearer,
    challenge,
    claims_for,
    login,
    now_ts,
    segment,
    sign,
)
from tests.helpers_sql import run_sql
from widgetsvc.auth.accounts import NewUser

ADMIN_EMAIL = "admin@example.com"
USER_EMAIL = "user@example.com"
NEW_WIDGET = {"name": "stolen", "info_url": "https://www.example.com", "deadline": "2099-01-01"}

# (method, path, realm): a read that needs a token and a write that needs an admin; then the
# widget reads, which check the caller in the same statement as they read (auth/caller.py):
# the list, an existing widget, a name that cannot exist (still read, as NULL), and a bad page,
# which the list answers without reading, so the middleware checks the caller after it.
ENDPOINTS = [
    ("GET", USER, USER_REALM),
    ("POST", WIDGETS, ADMIN_REALM),
    ("GET", WIDGETS, USER_REALM),
    ("GET", f"{WIDGETS}/before", USER_REALM),
    ("GET", f"{WIDGETS}/no%20such%21", USER_REALM),
    ("GET", f"{WIDGETS}?page=0", USER_REALM),
    ("GET", f"{WIDGETS}/a%00b", USER_REALM),
]
ENDPOINT_IDS = ["token-endpoint", "admin-endpoint", "list-read", "item-read",
                "item-impossible-name", "list-no-read", "item-no-read"]


# -- the forgery kit (sign, segment, claims_for and DROP are in tests/helpers.py) --------------

HS256 = {"typ": "JWT", "alg": "HS256"}


def raw_claims(public_id, **json_numbers: str) -> bytes:
    """The claims as JSON text with some values spelled literally (``1e400``, ``NaN``...)."""
    values = claims_for(public_id)
    text = json.dumps(values)
    for name, literal in json_numbers.items():
        text = text.replace(f'"{name}": {values[name]}', f'"{name}": {literal}')
        assert f'"{name}": {literal}' in text
    return text.encode()


# -- helpers -----------------------------------------------------------------------------------

def call(app, method: str, url: str, headers: dict[str, str], status):
    if method == "POST" and url == WIDGETS:
        return app.post_json(url, NEW_WIDGET, headers=headers, status=status)
    return app.request(url, method=method, headers=headers, status=status, expect_errors=True)


@pytest.fixture
def admin(app, users) -> NewUser:
    """An admin who exists: a forged token for it that got through would create a widget."""
    return users.create(ADMIN_EMAIL, PASSWORD, admin=True)


@pytest.fixture
def plain(app, users) -> NewUser:
    return users.create(USER_EMAIL, PASSWORD, admin=False)


# -- the control -------------------------------------------------------------------------------

def test_the_forgery_kit_makes_valid_tokens(app, admin):
    token = sign(HS256, claims_for(admin.public_id))
    assert app.get(USER, headers=bearer(token), status=200).json["email"] == ADMIN_EMAIL
    app.post_json(WIDGETS, NEW_WIDGET, headers=bearer(token), status=201)


def test_the_kit_spells_json_numbers_literally(app, admin):
    """``raw_claims`` with ordinary numbers is a valid token: the literal rewriting works."""
    now = now_ts()
    payload = raw_claims(admin.public_id, exp=str(now + 600), iat=f"{now}.0")
    app.get(USER, headers=bearer(sign(HS256, payload)), status=200)


# -- algorithm and signature attacks -----------------------------------------------------------

PEM_WRAPPED_SECRET = (b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(SECRET.encode())
                      + b"\n-----END PUBLIC KEY-----\n")
ATTACKER_KEY = b"attacker-chosen-key-0123456789abcdef"


def algorithm_attacks(public_id) -> dict[str, str]:
    good = claims_for(public_id)
    head, body, _ = sign(HS256, good).split(".")
    return {
        # alg "none": no signature at all, or a signature the server should not even look at
        "none unsigned": f"{segment({'typ': 'JWT', 'alg': 'none'})}.{body}.",
        "none with a dummy signature": f"{segment({'typ': 'JWT', 'alg': 'none'})}.{body}.AA",
        "None unsigned": f"{segment({'typ': 'JWT', 'alg': 'None'})}.{body}.",
        "NONE signed": sign({"typ": "JWT", "alg": "NONE"}, good),
        "none signed with the secret": sign({"typ": "JWT", "alg": "none"}, good),
        # another HMAC with the right secret: still not the pinned algorithm
        "HS512 with the right secret": sign({"typ": "JWT", "alg": "HS512"}, good,
                                            digest=hashlib.sha512),
        "HS384 with the right secret": sign({"typ": "JWT", "alg": "HS384"}, good,
                                            digest=hashlib.sha384),
        "hs256 lower-case alg": sign({"typ": "JWT", "alg": "hs256"}, good),
        # algorithm confusion: an asymmetric alg whose "public key" is the HMAC secret
        "RS256 HMAC-signed with the secret": sign({"typ": "JWT", "alg": "RS256"}, good),
        "RS256 HMAC-signed with the PEM-wrapped secret": sign(
            {"typ": "JWT", "alg": "RS256"}, good, key=PEM_WRAPPED_SECRET),
        "ES256 HMAC-signed with the secret": sign({"typ": "JWT", "alg": "ES256"}, good),
        "PS256 HMAC-signed with the secret": sign({"typ": "JWT", "alg": "PS256"}, good),
        "EdDSA HMAC-signed with the secret": sign({"typ": "JWT", "alg": "EdDSA"}, good),
        "alg missing": sign({"typ": "JWT"}, good),
        "alg null": sign({"typ": "JWT", "alg": None}, good),
        "alg a list": sign({"typ": "JWT", "alg": ["HS256"]}, good),
        # keys the attacker supplies in the header are never trusted
        "embedded jwk": sign({"typ": "JWT", "alg": "HS256",
                              "jwk": {"kty": "oct", "k": b64url(ATTACKER_KEY)}},
                             good, key=ATTACKER_KEY),
        "jku to the attacker": sign({"typ": "JWT", "alg": "HS256",
                                     "jku": "https://attacker.example/keys.json"},
                                    good, key=ATTACKER_KEY),
        "kid path traversal, empty key": sign({"typ": "JWT", "alg": "HS256",
                                               "kid": "../../../../dev/null"}, good, key=b""),
        "kid sql injection": sign({"typ": "JWT", "alg": "HS256",
                                   "kid": "x' UNION SELECT 'attacker-key"}, good,
                                  key=b"attacker-key"),
        # forged or stripped signatures
        "foreign secret": sign(HS256, good, key=b"another-secret-that-is-long-enough-0123"),
        "empty secret": sign(HS256, good, key=b""),
        "secret with a trailing newline": sign(HS256, good, key=SECRET.encode() + b"\n"),
        "signature stripped": f"{head}.{body}.",
        "signature of another token": f"{head}.{body}."
                                      + sign(HS256, claims_for(public_id)).split(".")[2],
        "header JSON is a list": sign(b'["HS256"]', good),
    }


ALGORITHM_ATTACKS = list(algorithm_attacks(uuid.uuid4()))


@pytest.mark.parametrize(("method", "url", "realm"), ENDPOINTS, ids=ENDPOINT_IDS)
@pytest.mark.parametrize("attack", ALGORITHM_ATTACKS)
def test_algorithm_and_signature_attacks_are_invalid(app, admin, method, url, realm, attack):
    token = algorithm_attacks(admin.public_id)[attack]
    resp = call(app, method, url, bearer(token), status=401)
    assert_token_error(resp, INVALID, realm)


@pytest.mark.parametrize(("method", "url", "realm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_payload_tampered_to_admin_keeps_its_old_signature_and_fails(
        app, admin, plain, method, url, realm):
    """A real user token with ``admin`` flipped to true (and, worse, ``sub`` switched to an
    admin's id), re-encoded, old signature kept."""
    token = login(app, USER_EMAIL)
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload["admin"] is False
    flipped = {**payload, "admin": True}
    switched = {**flipped, "sub": str(admin.public_id)}
    for forged in (flipped, switched):
        tampered = f"{head}.{segment(forged)}.{sig}"
        assert_token_error(call(app, method, url, bearer(tampered), status=401), INVALID, realm)
    # the untampered token still works for what a user may do
    app.get(USER, headers=bearer(token), status=200)


# -- claims ------------------------------------------------------------------------------------

def claim_attacks(public_id) -> dict[str, str]:
    now = now_ts()
    return {
        "no exp": sign(HS256, claims_for(public_id, exp=DROP)),
        "no iat": sign(HS256, claims_for(public_id, iat=DROP)),
        "no sub": sign(HS256, claims_for(public_id, sub=DROP)),
        "no jti": sign(HS256, claims_for(public_id, jti=DROP)),
        "sub an int": sign(HS256, claims_for(public_id, sub=1)),
        "sub a float": sign(HS256, claims_for(public_id, sub=1.5)),
        "sub a list": sign(HS256, claims_for(public_id, sub=[str(public_id)])),
        "sub an object": sign(HS256, claims_for(public_id, sub={"id": str(public_id)})),
        "sub not a uuid": sign(HS256, claims_for(public_id, sub="admin@example.com")),
        "sub a sql injection": sign(HS256, claims_for(public_id, sub="' OR '1'='1")),
        "sub a uuid plus junk": sign(HS256, claims_for(public_id, sub=f"{public_id}' OR '1'='1")),
        "jti an int": sign(HS256, claims_for(public_id, jti=7)),
        "jti null": sign(HS256, claims_for(public_id, jti=None)),
        "iat beyond the leeway": sign(HS256, claims_for(public_id, iat=now + 120, exp=now + 1000)),
        "nbf beyond the leeway": sign(HS256, claims_for(public_id, nbf=now + 120)),
        "nbf a string": sign(HS256, claims_for(public_id, nbf="soon")),
        # huge JSON numbers: float overflow, NaN and integers no clock can hold
        "exp 1e400": sign(HS256, raw_claims(public_id, exp="1e400")),
        "exp -1e400": sign(HS256, raw_claims(public_id, exp="-1e400")),
        "exp NaN": sign(HS256, raw_claims(public_id, exp="NaN")),
        "exp Infinity": sign(HS256, raw_claims(public_id, exp="Infinity")),
        "exp 10**30": sign(HS256, raw_claims(public_id, exp=str(10**30))),
        "exp 1e300": sign(HS256, raw_claims(public_id, exp="1e300")),
        "exp 10**400": sign(HS256, raw_claims(public_id, exp="1" + "0" * 400)),
        "iat 1e400": sign(HS256, raw_claims(public_id, iat="1e400")),
        "iat -1e400": sign(HS256, raw_claims(public_id, iat="-1e400")),
        "iat NaN": sign(HS256, raw_claims(public_id, iat="NaN")),
        "iat 10**30": sign(HS256, raw_claims(public_id, iat=str(10**30))),
        "iat -10**30": sign(HS256, raw_claims(public_id, iat=str(-(10**30)))),
        "exp a numeric string": sign(HS256, claims_for(public_id, exp=str(now + 900))),
    }


CLAIM_ATTACKS = list(claim_attacks(uuid.uuid4()))


@pytest.mark.parametrize(("method", "url", "realm"), ENDPOINTS, ids=ENDPOINT_IDS)
@pytest.mark.parametrize("attack", CLAIM_ATTACKS)
def test_claim_attacks_are_invalid(app, admin, method, url, realm, attack):
    token = claim_attacks(admin.public_id)[attack]
    resp = call(app, method, url, bearer(token), status=401)
    assert_token_error(resp, INVALID, realm)


def test_iat_and_nbf_within_the_leeway_are_accepted(app, admin, config):
    """The control for the two "beyond the leeway" attacks: the same claims a little in the
    future, inside ``config.token_leeway``, are clock skew, not an attack."""
    assert config.token_leeway >= 5
    soon = now_ts() + config.token_leeway - 3
    for token in (sign(HS256, claims_for(admin.public_id, iat=soon)),
                  sign(HS256, claims_for(admin.public_id, nbf=soon))):
        app.get(USER, headers=bearer(token), status=200)
    late = now_ts() + config.token_leeway + 30
    for token in (sign(HS256, claims_for(admin.public_id, iat=late, exp=late + 900)),
                  sign(HS256, claims_for(admin.public_id, nbf=late))):
        assert_token_error(app.get(USER, headers=bearer(token), status=401), INVALID)


@pytest.mark.parametrize(("method", "url", "realm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_an_expired_token_says_so(app, admin, config, method, url, realm):
    now = now_ts()
    past = now - config.token_leeway - 60
    token = sign(HS256, claims_for(admin.public_id, iat=past - 900, exp=past))
    assert_token_error(call(app, method, url, bearer(token), status=401), EXPIRED, realm)


# -- tokens that were valid once ---------------------------------------------------------------

@pytest.fixture
def readable(app, users) -> None:
    """Data a refused token could leak: the widget "before", owned by another admin (so it
    outlives a deleted attacker), shown to a valid token in the list and by name."""
    users.create("owner@example.com", PASSWORD, admin=True)
    owner = bearer(login(app, "owner@example.com"))
    app.post_json(WIDGETS, {**NEW_WIDGET, "name": "before"}, headers=owner, status=201)
    assert app.get(WIDGETS, headers=owner).json["total_items"] == 1
    app.get(f"{WIDGETS}/before", headers=owner, status=200)


@pytest.mark.parametrize(("method", "url", "realm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_logged_out_token_is_blacklisted(app, admin, readable, method, url, realm):
    token = login(app, ADMIN_EMAIL)
    app.get(USER, headers=bearer(token), status=200)
    app.post(LOGOUT, headers=bearer(token), status=200)
    assert_token_error(call(app, method, url, bearer(token), status=401), REVOKED, realm)
    # logging out again with it is refused the same way
    assert_token_error(app.post(LOGOUT, headers=bearer(token), status=401), REVOKED)


@pytest.mark.parametrize(("method", "url", "realm"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_the_token_of_a_deleted_user_is_invalid(app, db, admin, readable, method, url, realm):
    token = login(app, ADMIN_EMAIL)
    app.get(USER, headers=bearer(token), status=200)
    assert run_sql(db, "attacks_delete_user", email=ADMIN_EMAIL) == 1
    assert_token_error(call(app, method, url, bearer(token), status=401), INVALID, realm)


def test_a_demoted_admin_can_still_read_but_no_longer_write(app, db, admin):
    token = login(app, ADMIN_EMAIL)
    app.post_json(WIDGETS, {**NEW_WIDGET, "name": "before"}, headers=bearer(token), status=201)
    assert run_sql(db, "attacks_set_admin", email=ADMIN_EMAIL, admin=False) == 1

    # reads: still a valid token, and the user body tells the truth
    assert app.get(USER, headers=bearer(token), status=200).json["admin"] is False
    app.get(WIDGETS, headers=bearer(token), status=200)
    app.get(f"{WIDGETS}/before", headers=bearer(token), status=200)

    # writes: the token's admin claim (still true) is not trusted
    writes = [
        app.post_json(WIDGETS, NEW_WIDGET, headers=bearer(token), status=403),
        app.put_json(f"{WIDGETS}/before", NEW_WIDGET, headers=bearer(token), status=403),
        app.put_json(f"{WIDGETS}/new-one", NEW_WIDGET, headers=bearer(token), status=403),
        app.delete(f"{WIDGETS}/before", headers=bearer(token), status=403),
    ]
    for resp in writes:
        assert resp.json == {"message": NOT_ADMIN}
        assert resp.headers["WWW-Authenticate"] == challenge(
            ADMIN_REALM, NOT_ADMIN, error="insufficient_scope")
    app.get(f"{WIDGETS}/before", headers=bearer(token), status=200)
    app.get(f"{WIDGETS}/new-one", headers=bearer(token), status=404)


# -- odd Authorization headers (WSGI) ----------------------------------------------------------

@pytest.mark.parametrize(("header", "kind"), [
    ("Basic dXNlcjpwYXNz", "none"),
    ("Basic {token}", "none"),
    ("Digest username=admin", "none"),
    ("Bearer", "either"),
    ("Bearer ", "either"),
    ("Bearer  a b c", "invalid"),
    ("Bearer {token} {token}", "invalid"),
    ("Bearer {token},Bearer {token}", "invalid"),
    ("Bearer \xe9t\xe9.\xe9t\xe9.\xe9t\xe9", "invalid"),         # latin-1 bytes
    ("Bearer \xc3\xa9.\xc3\xa9.\xc3\xa9", "invalid"),            # UTF-8 bytes as WSGI sees them
    ("Bearer {token}\x7f", "invalid"),
    ("Bearer\t{token}", "none"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_odd_authorization_headers_are_401(app, admin, header, kind):
    token = login(app, ADMIN_EMAIL)
    resp = app.get(USER, headers={"Authorization": header.format(token=token)}, status=401)
    if kind == "none":
        assert_no_token(resp)
    elif kind == "invalid":
        assert_token_error(resp, INVALID)
    else:  # "Bearer" without a token: either answer of the contract, but a 401 in its shape
        if resp.json == {"message": "Unauthorized"}:
            assert_no_token(resp)
        else:
            assert_token_error(resp, INVALID)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_a_valid_token_under_a_lower_case_scheme_is_accepted(app, admin, scheme):
    token = login(app, ADMIN_EMAIL)
    resp = app.get(USER, headers={"Authorization": f"{scheme} {token}"}, status=200)
    assert resp.json["email"] == ADMIN_EMAIL


# -- real HTTP: what gunicorn hands the app ----------------------------------------------------

def raw_request(server, headers: list[tuple[bytes, bytes]], path: str = USER):
    """GET ``path`` with exactly these header lines (repeats and raw bytes allowed)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("GET", path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def assert_http_401(status, headers, raw, messages=(INVALID,)) -> dict:
    assert status == 401, (status, raw[:300])
    assert headers["Content-Type"].startswith("application/json"), raw[:300]
    body = json.loads(raw)
    assert body["message"] in messages, body
    assert set(body) == {"message"}
    assert headers["WWW-Authenticate"].startswith(f'Bearer realm="{USER_REALM}"')
    return body


def test_attacks_over_real_http(app, admin, live_server):
    """One server for all the header attacks that only a real HTTP parser can deliver."""
    token = login(app, ADMIN_EMAIL)
    good = f"Bearer {token}".encode()
    forged = f"Bearer {sign(HS256, claims_for(uuid.uuid4()))}".encode()

    # control: the server is up and the token is good
    status, _, raw = raw_request(live_server, [(b"Authorization", good)])
    assert status == 200, raw[:300]

    # several Authorization headers: never a 500, never a pass (nginx in front refuses a
    # repeated Authorization line itself: its JSON 400)
    for pair in ([good, good], [good, b"Bearer garbage"], [b"Bearer garbage", good],
                 [good, b"Basic dXNlcjpwYXNz"], [forged, good]):
        status, headers, raw = raw_request(live_server, [(b"Authorization", v) for v in pair])
        if status == 400:
            assert headers["Content-Type"].startswith("application/json"), raw[:300]
            assert json.loads(raw) == {"message": "Bad Request"}
        else:
            assert_http_401(status, headers, raw, messages=(INVALID, "Unauthorized"))

    # an 8 KiB Authorization header (a JWT-shaped one, and one of junk): a JSON 401
    for value in (b"Bearer " + b".".join([b"a" * 2728] * 3),
                  b"Bearer " + b"x" * (8192 - 7)):
        assert len(value) >= 8192
        status, headers, raw = raw_request(live_server, [(b"Authorization", value)])
        assert_http_401(status, headers, raw)

    # raw UTF-8, and a token with unicode in it
    for value in ("Bearer ünïcödé".encode(), f"Bearer {token}é".encode(),
                  "Bearer 🔑.🔑.🔑".encode()):
        status, headers, raw = raw_request(live_server, [(b"Authorization", value)])
        assert_http_401(status, headers, raw)

    # nothing of that left a traceback in the log
    assert "Traceback" not in live_server.log()
