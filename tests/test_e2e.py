"""End to end: the real ``bin/serve`` (gunicorn) over real HTTP. (Its refusals to start with an
unsafe production configuration are in test_config_production.py.)"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers import (
    API,
    INVALID,
    PASSWORD,
    REVOKED,
    USER_REALM,
    bearer,
    challenge,
)
from tests.live_http import Reply, call

pytestmark = pytest.mark.e2e
JSON = {"Content-Type": "application/json"}


def test_register_login_user_logout_then_the_token_is_refused(live_server):
    email = f"E2E-{uuid.uuid4().hex[:8]}@Example.com"
    credentials = {"email": email, "password": PASSWORD}

    registered = call(live_server, "POST", f"{API}/auth/register", data=credentials)
    assert registered.status == 201
    assert registered.json["message"] == "successfully registered"
    assert registered.headers["Cache-Control"] == "no-store"

    logged_in = call(live_server, "POST", f"{API}/auth/login",
                     data={"email": email.lower(), "password": PASSWORD})
    assert logged_in.status == 200
    assert logged_in.json["message"] == "successfully logged in"
    assert logged_in.json["token_type"] == "bearer"
    token = logged_in.json["access_token"]

    me = call(live_server, "GET", f"{API}/auth/user", headers=bearer(token))
    assert me.status == 200
    assert (me.json["email"], me.json["admin"]) == (email, False)

    out = call(live_server, "POST", f"{API}/auth/logout", data={}, headers=bearer(token))
    assert out.status == 200
    assert out.json == {"status": "success", "message": "successfully logged out"}

    # Every worker refuses it now (several requests, fresh connections).
    for _ in range(4):
        refused = call(live_server, "GET", f"{API}/auth/user", headers=bearer(token))
        assert refused.status == 401
        assert refused.json == {"message": REVOKED}
        assert refused.headers["WWW-Authenticate"] == challenge(USER_REALM, REVOKED)
    # The register token was never revoked.
    again = call(live_server, "GET", f"{API}/auth/user",
                 headers=bearer(registered.json["access_token"]))
    assert again.status == 200


def json_body_of(size: int) -> bytes:
    body = json.dumps({"email": "big@example.com", "password": PASSWORD, "pad": "x" * size})
    body = body.encode()[:size - 2] + b'"}'
    assert len(body) == size
    json.loads(body)  # valid JSON: only its size is wrong
    return body


@pytest.mark.parametrize("size", [
    70_000,
    65_537,
    2_000_000,  # far more than the socket buffers hold: the client still gets the answer
])
def test_too_large_body_gets_the_413_json_answer(live_server, size):
    resp = call(live_server, "POST", f"{API}/auth/register", body=json_body_of(size),
                headers=JSON)

    assert resp.status == 413
    assert resp.json == {
        "status": "fail", "message": "Request body too large: the limit is 65536 bytes.",
    }
    # Nothing was registered.
    login = call(live_server, "POST", f"{API}/auth/login",
                 data={"email": "big@example.com", "password": PASSWORD})
    assert login.status == 401


def post_chunked(server, path: str, body: bytes) -> Reply:
    """POST with ``Transfer-Encoding: chunked`` (no Content-Length), as streaming clients do."""
    return call(server, "POST", path, body=body, chunked=True, headers=JSON)


def test_chunked_body_is_read(live_server):
    body = json.dumps({"email": "chunked@example.com", "password": PASSWORD}).encode()
    resp = post_chunked(live_server, f"{API}/auth/register", body)
    assert resp.status == 201, resp.raw


def test_too_large_chunked_body_gets_the_413_json_answer(live_server):
    resp = post_chunked(live_server, f"{API}/auth/register", json_body_of(70_000))
    assert resp.status == 413, resp.raw
    assert resp.json["status"] == "fail"


def test_exactly_65536_bytes_is_processed(live_server):
    resp = call(live_server, "POST", f"{API}/auth/register", body=json_body_of(65_536),
                headers=JSON)
    assert resp.status == 201
    assert resp.json["message"] == "successfully registered"


def test_unknown_path_is_a_json_404(live_server):
    resp = call(live_server, "GET", f"{API}/no-such-thing")
    assert resp.status == 404
    assert resp.json == {"message": "Not Found"}


def test_8_kib_authorization_header_gets_a_json_401(live_server):
    header = "Bearer " + "a" * 8192
    resp = call(live_server, "GET", f"{API}/auth/user", headers={"Authorization": header})
    assert resp.status == 401
    assert resp.json == {"message": INVALID}
    assert resp.headers["WWW-Authenticate"] == challenge(USER_REALM, INVALID)
