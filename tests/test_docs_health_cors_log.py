"""Swagger UI from local assets, the health endpoint, CORS, and the JSON request log."""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import re
import uuid

import pytest
import webtest

from tests.helpers import API, bearer
from widgetsvc.app import create_app

EXPOSED = {"link", "location", "total-count", "www-authenticate"}
URL_ATTRIBUTE = re.compile(r"""(?:src|href|url)\s*[=:]\s*["']([^"']*)["']""", re.IGNORECASE)


# -- Swagger UI -------------------------------------------------------------------------------

def test_swagger_ui_page_uses_only_local_assets(app):
    resp = app.get(f"{API}/ui")
    assert resp.content_type == "text/html"
    page = resp.text
    assert "SwaggerUIBundle" in page
    # No CDN: nothing absolute at all (http:, https:, or protocol-relative //host).
    assert not re.search(r"https?://", page, re.IGNORECASE), page
    references = URL_ATTRIBUTE.findall(page)
    assert f"{API}/openapi.json" in references
    assets = [ref for ref in references if ref.startswith(f"{API}/ui/assets/")]
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui.css", "swagger-ui-bundle.js"}
    for ref in references:
        assert ref.startswith("/") and not ref.startswith("//"), ref
    for asset in assets:
        served = app.get(asset)  # served by the app itself
        assert served.status_int == 200 and len(served.body) > 500, asset
    assert "validatorUrl: null" in page  # no call to the public validator badge either


def test_ui_assets_outside_the_bundle_are_not_served(app):
    app.get(f"{API}/ui/assets/no-such-file.js", status=404)
    app.get(f"{API}/ui/assets/../../../../etc/passwd", status=404)


# -- health -----------------------------------------------------------------------------------

def test_health_is_ok_without_authentication(app):
    resp = app.get(f"{API}/health")
    assert resp.status_int == 200
    assert resp.content_type == "application/json"
    assert resp.json == {"status": "ok", "database": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"
    # A bad token does not matter on a public endpoint.
    assert app.get(f"{API}/health", headers=bearer("junk")).json["status"] == "ok"


# -- CORS -------------------------------------------------------------------------------------

def _exposed(headers) -> set[str]:
    value = headers.get("Access-Control-Expose-Headers", "")
    return {h.strip().lower() for h in value.split(",") if h.strip()}


def test_cors_headers_on_a_response_to_a_request_with_an_origin(app, user_token):
    origin = {"Origin": "https://client.example.org"}
    resp = app.get(f"{API}/widgets", headers={**origin, **bearer(user_token)})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert _exposed(resp.headers) >= EXPOSED
    assert "Link" in resp.headers and "Total-Count" in resp.headers
    # Errors too: a browser client must be able to read a 401 and its challenge.
    resp = app.get(f"{API}/widgets", headers=origin, status=401)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert _exposed(resp.headers) >= EXPOSED
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    # Without an Origin it is not a CORS request.
    assert "Access-Control-Allow-Origin" not in app.get(f"{API}/health").headers


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", f"{API}/widgets/some-widget"),  # an admin endpoint
    ("POST", f"{API}/widgets"),  # an admin endpoint
    ("GET", f"{API}/auth/user"),  # a token endpoint
    ("POST", f"{API}/auth/login"),
])
def test_preflight_is_answered_without_authentication(app, method, path):
    resp = app.options(path, headers={
        "Origin": "https://client.example.org",
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert resp.status_int == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert method in resp.headers["Access-Control-Allow-Methods"]
    allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "WWW-Authenticate" not in resp.headers


# -- request log ------------------------------------------------------------------------------

class CapturedLogs:
    """What the app wrote: the request log's lines (straight to stderr, file descriptor 2) and
    every logging record."""

    def __init__(self, caplog, capfd):
        self._caplog, self._capfd = caplog, capfd
        self._stderr = ""

    def clear(self) -> None:
        self._capfd.readouterr()
        self._caplog.clear()
        self._stderr = ""

    def stderr_lines(self) -> list[str]:
        self._stderr += self._capfd.readouterr().err
        return self._stderr.splitlines()

    def access_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stderr_lines() if line.startswith("{")]

    def all_lines(self) -> list[str]:
        return self.stderr_lines() + [self._caplog.handler.format(r)
                                      for r in self._caplog.records]


@pytest.fixture
def access_log(caplog, capfd):
    with caplog.at_level(logging.DEBUG):
        yield CapturedLogs(caplog, capfd)


def test_one_json_line_per_request_with_the_fields(app, user_token, access_log):
    access_log.clear()
    app.get(f"{API}/widgets?page=1&per_page=5", headers=bearer(user_token))
    app.get(f"{API}/widgets", status=401)
    app.get(f"{API}/no-such-thing", status=404)
    app.delete(f"{API}/health", status=405)
    lines = access_log.access_lines()
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", f"{API}/widgets", 200),  # no query string: the path only
        ("GET", f"{API}/widgets", 401),
        ("GET", f"{API}/no-such-thing", 404),
        ("DELETE", f"{API}/health", 405),
    ]
    for entry in lines:
        assert set(entry) == {"method", "path", "status", "duration_ms", "request_id"}
        assert isinstance(entry["duration_ms"], int | float) and entry["duration_ms"] >= 0
        assert re.fullmatch(r"[0-9a-f]{32}", entry["request_id"])
    assert len({e["request_id"] for e in lines}) == len(lines)


def test_no_request_log_above_info_but_the_request_id_stays(config, db, access_log):
    quiet = webtest.TestApp(create_app(dataclasses.replace(config, log_level="WARNING"), db=db))
    access_log.clear()
    resp = quiet.get(f"{API}/health", headers={"X-Request-ID": "quiet-1"})
    assert resp.headers["X-Request-ID"] == "quiet-1"
    assert access_log.access_lines() == []
    loud = webtest.TestApp(create_app(dataclasses.replace(config, log_level="DEBUG"), db=db))
    loud.get(f"{API}/health", headers={"X-Request-ID": "loud-1"})
    assert [e["request_id"] for e in access_log.access_lines()] == ["loud-1"]


def test_request_id_is_taken_when_sane_else_generated(app, access_log):
    access_log.clear()
    given = "client-req.42:abc_DEF"
    resp = app.get(f"{API}/health", headers={"X-Request-ID": given})
    assert resp.headers["X-Request-ID"] == given
    generated = app.get(f"{API}/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    for insane in ("has spaces in it", "x" * 129, "<script>", 'a"b', "ä"):
        got = app.get(f"{API}/health", headers={"X-Request-ID": insane.encode("utf-8").decode(
            "latin-1")}).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", got), insane
    # An error response carries it too.
    assert app.get(f"{API}/auth/user", headers={"X-Request-ID": "err-1"},
                   status=401).headers["X-Request-ID"] == "err-1"
    ids = [e["request_id"] for e in access_log.access_lines()]
    assert ids[0] == given and ids[1] == generated and ids[-1] == "err-1"
    assert len(ids) == 8


def _secrets_flow(post, get, email: str) -> tuple[str, ...]:
    """register, login, user, logout; returns the secrets that went over the wire."""
    password = f"Pw-{uuid.uuid4().hex}"
    register = post(f"{API}/auth/register", {"email": email, "password": password})
    token = post(f"{API}/auth/login", {"email": email, "password": password})
    assert get(f"{API}/auth/user", token)["email"] == email
    assert post(f"{API}/auth/logout", None, token)["message"] == "successfully logged out"
    post(f"{API}/auth/login", {"email": email, "password": password + "-wrong"})
    return password, register, token


def _assert_no_secret(lines: list[str], secrets: tuple[str, ...]) -> None:
    assert lines
    for line in lines:
        for secret in secrets:
            assert secret not in line
        assert "$2b$" not in line and "$2a$" not in line and "$2y$" not in line
        # Not even a token's signature or payload part.
        for secret in secrets[1:]:
            for part in secret.split("."):
                assert part not in line


def test_no_password_token_or_hash_in_the_log_in_process(app, access_log):
    access_log.clear()

    def post(path, data, token=None):
        headers = bearer(token) if token else {}
        if data is None:
            return app.post(path, headers=headers).json
        resp = app.post_json(path, data, headers=headers, expect_errors=True)
        return resp.json.get("access_token") or resp.json

    def get(path, token):
        return app.get(path, headers=bearer(token)).json

    secrets = _secrets_flow(post, get, "logcheck@example.com")
    lines = access_log.all_lines()
    assert len(access_log.access_lines()) == 5
    _assert_no_secret(lines, secrets)


def test_no_password_token_or_hash_in_the_live_servers_log(live_server):
    def call(method, path, data=None, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=30)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if token:
            headers.update(bearer(token))
        try:
            conn.request(method, path, body=json.dumps(data) if data is not None else None,
                         headers=headers)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def post(path, data, token=None):
        body = call("POST", path, data, token)
        return body.get("access_token") or body

    secrets = _secrets_flow(post, lambda path, token: call("GET", path, token=token),
                            "live-logcheck@example.com")
    log = live_server.log()
    requests = [json.loads(line) for line in log.splitlines() if line.startswith('{"method"')]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("POST", f"{API}/auth/register", 201),
        ("POST", f"{API}/auth/login", 200),
        ("GET", f"{API}/auth/user", 200),
        ("POST", f"{API}/auth/logout", 200),
        ("POST", f"{API}/auth/login", 401),
    ]
    _assert_no_secret(log.splitlines(), secrets)


def test_the_secret_check_can_fail():
    with pytest.raises(AssertionError):
        _assert_no_secret(["hash $2b$04$abc"], ("pw", "a.b.c"))
    with pytest.raises(AssertionError):
        _assert_no_secret(["got pw here"], ("pw", "a.b.c"))

