"""End to end: the real ``bin/serve`` (gunicorn) over real HTTP, and its refusals to start."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import PASSWORD, SECRET, free_port
from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.localdb import REPO_ROOT

pytestmark = pytest.mark.e2e

API = "/api/v1"
CATALOG = load_queries(SQL_DIR / "testing")
USER_REALM = "registered_users@mydomain.com"


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, raw: bytes):
        self.status = status
        self.headers = headers
        self.raw = raw

    @property
    def json(self):
        assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers
        return json.loads(self.raw)


def call(server, method: str, path: str, *, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def post_json(server, path: str, data: dict, headers: dict[str, str] | None = None) -> Response:
    return call(server, "POST", path, body=json.dumps(data).encode(),
                headers={"Content-Type": "application/json", **(headers or {})})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_login_user_logout_then_the_token_is_refused(live_server):
    email = f"E2E-{uuid.uuid4().hex[:8]}@Example.com"
    credentials = {"email": email, "password": PASSWORD}

    registered = post_json(live_server, f"{API}/auth/register", credentials)
    assert registered.status == 201
    assert registered.json["message"] == "successfully registered"
    assert registered.headers["Cache-Control"] == "no-store"

    logged_in = post_json(live_server, f"{API}/auth/login",
                          {"email": email.lower(), "password": PASSWORD})
    assert logged_in.status == 200
    assert logged_in.json["message"] == "successfully logged in"
    assert logged_in.json["token_type"] == "bearer"
    token = logged_in.json["access_token"]

    me = call(live_server, "GET", f"{API}/auth/user", headers=bearer(token))
    assert me.status == 200
    assert (me.json["email"], me.json["admin"]) == (email, False)

    out = post_json(live_server, f"{API}/auth/logout", {}, headers=bearer(token))
    assert out.status == 200
    assert out.json == {"status": "success", "message": "successfully logged out"}

    # Every worker refuses it now (several requests, fresh connections).
    for _ in range(4):
        refused = call(live_server, "GET", f"{API}/auth/user", headers=bearer(token))
        assert refused.status == 401
        assert refused.json == {"message": "Token blacklisted. Please log in again."}
        assert refused.headers["WWW-Authenticate"] == (
            f'Bearer realm="{USER_REALM}", error="invalid_token", '
            'error_description="Token blacklisted. Please log in again."'
        )
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
                headers={"Content-Type": "application/json"})

    assert resp.status == 413
    assert resp.json == {
        "status": "fail", "message": "Request body too large: the limit is 65536 bytes.",
    }
    # Nothing was registered.
    login = post_json(live_server, f"{API}/auth/login",
                      {"email": "big@example.com", "password": PASSWORD})
    assert login.status == 401


def post_chunked(server, path: str, body: bytes) -> Response:
    """POST with ``Transfer-Encoding: chunked`` (no Content-Length), as streaming clients do."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        pieces = (body[i:i + 8192] for i in range(0, len(body), 8192))
        conn.request("POST", path, body=pieces, encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


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
                headers={"Content-Type": "application/json"})
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
    assert resp.json == {"message": "Invalid token. Please log in again."}
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer realm="{USER_REALM}", error="invalid_token", '
        'error_description="Invalid token. Please log in again."'
    )


# -- bin/serve refuses an unsafe production configuration ------------------------------------

def table_exists(url: str, name: str) -> bool:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(CATALOG["catalog_table_exists"], {"name": name}).fetchone()["present"]


@pytest.fixture
def untouched_db(pg_cluster):
    """A fresh, unmigrated database: refusing to start must leave it as it is."""
    name = f"serve_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


def run_serve(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [str(REPO_ROOT / "bin" / "serve")], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"bin/serve did not refuse to start:\n{stderr[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize(("secret", "rounds", "message"), [
    ("too-short-secret", "4", "SECRET_KEY must be at least 32 bytes in production"),
    ("", "12", "SECRET_KEY is not set"),
    ("é" * 15 + "x", "12", "SECRET_KEY must be at least 32 bytes in production"),  # 31 bytes
    (SECRET, "4", "BCRYPT_ROUNDS must be at least 12 in production"),
])
def test_serve_refuses_an_unsafe_production_configuration(untouched_db, secret, rounds,
                                                          message):
    env = {
        **os.environ,
        "DATABASE_URL": untouched_db,
        "WIDGETSVC_ENV": "production",
        "SECRET_KEY": secret,
        "BCRYPT_ROUNDS": rounds,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
    }
    result = run_serve(env)

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"widgetsvc: {message}"
    assert "Booting worker" not in result.stderr  # gunicorn never started
    assert not table_exists(untouched_db, "schema_migrations")  # nothing was done first
    assert not table_exists(untouched_db, "users")
