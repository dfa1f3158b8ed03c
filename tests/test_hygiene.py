"""HTTP hygiene (docs/API.md §8.2) and the rows of issue 10's probe table: HEAD, Host, headers,
duplicate JSON keys, broken chunked bodies, and JSON from every layer (app, gunicorn, nginx)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time

import pytest
import webtest

from tests.helpers import API, PASSWORD, SECRET, LiveServer, bearer
from widgetsvc.app import create_app
from widgetsvc.config import Config, ConfigError
from widgetsvc.ops import front, plumbing, settings
from widgetsvc.setting_errors import SettingError

WIDGETS = f"{API}/widgets"
USER = f"{API}/auth/user"
WIDGET = {"name": "hosted", "info_url": "https://www.example.com", "deadline": "2999-12-31"}


def app_with(database_url, db, **env: str) -> webtest.TestApp:
    config = Config.from_env({"DATABASE_URL": database_url, "SECRET_KEY": SECRET,
                              "WIDGETSVC_ENV": "test", "BCRYPT_ROUNDS": "4", **env})
    return webtest.TestApp(create_app(config, db=db))


# -- HEAD ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [f"{API}/health", f"{API}/openapi.json", f"{API}/ui", USER,
                                  WIDGETS, f"{WIDGETS}?page=2&per_page=5", f"{WIDGETS}/w1",
                                  f"{WIDGETS}/missing"])
def test_head_answers_like_get_without_a_body(app, admin_token, path):
    app.post_json(WIDGETS, {**WIDGET, "name": "w1"}, headers=bearer(admin_token), status=201)
    got = app.get(path, headers=bearer(admin_token), expect_errors=True)
    head = app.head(path, headers=bearer(admin_token), expect_errors=True)
    assert head.status_int == got.status_int
    assert head.body == b""
    skip = {"x-request-id"}
    assert {k.lower(): v for k, v in head.headers.items() if k.lower() not in skip} == \
        {k.lower(): v for k, v in got.headers.items() if k.lower() not in skip}


@pytest.mark.parametrize("path", [USER, WIDGETS, f"{WIDGETS}/w1"])
def test_head_needs_what_get_needs(app, path):
    resp = app.head(path, status=401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer realm=")
    resp = app.head(path, headers={"Authorization": "Bearer not.a.token"}, status=401)
    assert "invalid_token" in resp.headers["WWW-Authenticate"]


def test_head_on_a_post_only_route_is_405(app):
    resp = app.head(f"{API}/auth/login", status=405)
    assert resp.headers["Allow"] == "POST, OPTIONS"


# -- Host ----------------------------------------------------------------------------------

INVALID_HOST = {"message": "Bad Request: invalid Host header"}


@pytest.mark.parametrize("host", ["evil.example:666/x?", "evil.example", "evil.example:8000",
                                  "localhost.evil.example", "127.0.0.1@evil", "", "local host"])
def test_a_host_not_allowed_is_400_on_every_request(app, admin_token, host):
    for method, path, body in (("GET", f"{API}/health", None), ("POST", WIDGETS, WIDGET),
                               ("GET", USER, None)):
        resp = app.request(path, method=method, headers={**bearer(admin_token), "Host": host},
                           body=json.dumps(body).encode() if body else b"",
                           content_type="application/json" if body else None,
                           expect_errors=True)
        assert resp.status_int == 400, (host, path)
        assert resp.json == INVALID_HOST
        assert "Location" not in resp.headers


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8443",
                                  "LOCALHOST:80"])
def test_loopback_hosts_are_allowed_with_any_port(app, host):
    app.get(f"{API}/health", headers={"Host": host}, status=200)


def test_public_url_makes_the_location_and_its_host_is_allowed(database_url, db, users):
    app = app_with(database_url, db, PUBLIC_URL="https://api.example.org/")
    users.create("admin@example.com", PASSWORD, admin=True)
    token = app.post_json(f"{API}/auth/login", {"email": "admin@example.com",
                                                "password": PASSWORD}).json["access_token"]
    for host in ("api.example.org", "localhost:8000"):
        resp = app.post_json(WIDGETS, {**WIDGET, "name": f"w-{len(host)}"},
                             headers={**bearer(token), "Host": host}, status=201)
        assert resp.headers["Location"] == f"https://api.example.org/api/v1/widgets/w-{len(host)}"
    app.get(f"{API}/health", headers={"Host": "evil.example"}, status=400)


def test_allowed_hosts_replace_the_loopback_names(database_url, db):
    app = app_with(database_url, db, ALLOWED_HOSTS="api.example.org, other.example:8443")
    app.get(f"{API}/health", headers={"Host": "api.example.org:1234"}, status=200)
    app.get(f"{API}/health", headers={"Host": "other.example:8443"}, status=200)
    app.get(f"{API}/health", headers={"Host": "other.example:8444"}, status=400)
    app.get(f"{API}/health", headers={"Host": "localhost"}, status=400)


@pytest.mark.parametrize(("name", "value"), [("PUBLIC_URL", "ftp://x.example"),
                                             ("PUBLIC_URL", "https://x.example/?q=1"),
                                             ("PUBLIC_URL", "https://u:p@x.example"),
                                             ("ALLOWED_HOSTS", "a.example/x"),
                                             ("ALLOWED_HOSTS", "a b")])
def test_bad_host_settings_are_refused(database_url, name, value):
    with pytest.raises(ConfigError):
        Config.from_env({"DATABASE_URL": database_url, "SECRET_KEY": SECRET,
                         "WIDGETSVC_ENV": "test", name: value})


# -- headers -------------------------------------------------------------------------------

def test_no_store_and_nosniff_on_token_and_user_data_and_errors(app, user_token):
    for resp in (app.get(USER, headers=bearer(user_token), status=200),
                 app.get(WIDGETS, headers=bearer(user_token), status=200),
                 app.get(USER, status=401),
                 app.get(f"{API}/nope", status=404),
                 app.post_json(f"{API}/auth/login", {"email": "x"}, status=400)):
        assert resp.headers["Cache-Control"] == "no-store", resp.request.url
        assert resp.headers["X-Content-Type-Options"] == "nosniff", resp.request.url


def test_the_ui_page_has_a_csp_of_its_own_origin_without_framing(app):
    resp = app.get(f"{API}/ui", status=200)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "*" not in csp and "http" not in csp and "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert app.get(f"{API}/ui/assets/swagger-ui.css").headers["X-Content-Type-Options"] == \
        "nosniff"


# -- bodies --------------------------------------------------------------------------------

def test_a_duplicate_json_key_is_400(app, admin_token):
    body = ('{"name": "dup", "info_url": "https://www.example.com", '
            '"info_url": "https://evil.example.com", "deadline": "2999-12-31"}')
    resp = app.post(WIDGETS, body, headers=bearer(admin_token),
                    content_type="application/json", status=400)
    assert resp.json == {"status": "fail",
                         "message": 'Malformed JSON: the key "info_url" appears more than once.'}
    nested = '{"name": "dup", "x": {"a": 1, "a": 2}}'
    app.post(WIDGETS, nested, headers=bearer(admin_token), content_type="application/json",
             status=400)


# -- over real sockets: direct gunicorn and nginx ------------------------------------------

def raw_exchange(port: int, data: bytes, *, then_close: bool = False, timeout: float = 15) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if then_close:
            sock.shutdown(socket.SHUT_WR)
        raw = b""
        try:
            while chunk := sock.recv(65536):
                raw += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return raw


def parse(raw: bytes) -> tuple[int, dict, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def chunked(path: str, chunks: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + chunks


BROKEN_CHUNKS = {
    "bad size zz": (b"zz\r\n{}\r\n0\r\n\r\n", False),
    "negative size": (b"-1\r\n{}\r\n0\r\n\r\n", False),
    "18 hex digits": (b"000000000000000002\r\n{}\r\n0\r\n\r\n", False),
    "cut mid-chunk": (b"10\r\n{\"email\": ", True),
    "missing terminator": (b"2\r\n{}", True),
}


@pytest.fixture(scope="module")
def servers(database_url, wsgi_server):
    """One server through nginx, one alone (``WIDGETSVC_DIRECT=1``); for each WSGI server
    (``wsgi_server``: a module-scoped parameter, so one pair per server)."""
    import tempfile
    from pathlib import Path
    logs = Path(tempfile.mkdtemp(prefix="hygiene-"))
    started = {"nginx": LiveServer(database_url, logs / "nginx.log").start(),
               "direct": LiveServer(database_url, logs / "direct.log",
                                    WIDGETSVC_DIRECT="1").start()}
    for server in started.values():
        deadline = time.monotonic() + 120
        while parse(raw_exchange(server.port, b"GET /api/v1/health HTTP/1.0\r\nHost: localhost"
                                               b"\r\n\r\n"))[0] != 200:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
    yield started
    for server in started.values():
        server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["nginx", "direct"])
@pytest.mark.parametrize("case", list(BROKEN_CHUNKS))
@pytest.mark.parametrize("path", [f"{API}/auth/login", f"{API}/auth/register", WIDGETS])
def test_a_broken_chunked_body_is_a_json_400(servers, mode, case, path):
    server = servers[mode]
    body, then_close = BROKEN_CHUNKS[case]
    before = len(server.log())
    raw = raw_exchange(server.port, chunked(path, body), then_close=then_close)
    if mode == "nginx" and then_close and raw == b"":
        return  # nginx drops a client that stopped sending mid-body: no answer, no worker
    status, headers, payload = parse(raw)
    if status == 401 and path == WIDGETS:
        return  # authentication comes first (and reads no body): nothing broken was read
    assert status == 400, (status, payload)
    assert headers["content-type"].startswith("application/json")
    assert "message" in json.loads(payload)
    time.sleep(0.2)
    added = server.log()[before:]
    assert "Traceback" not in added and "ERROR" not in added, added


@pytest.mark.e2e
def test_the_server_header_in_direct_mode_is_gunicorn_and_errors_are_json(servers, wsgi_server):
    """gunicorn alone answers what it cannot parse in JSON. Granian alone (issue 25; README,
    "Granian instead of gunicorn": --direct is for debugging) answers those with the same 4xx,
    empty when it is its own (and closes), never a 500 nor a hang; a 9,000-byte path reaches
    the app (its JSON 404)."""
    port = servers["direct"].port
    granian = wsgi_server == "granian"
    for request, expected in (
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 404 if granian else 414),
        (b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n"
         + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n", 431),
        (b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n", 400),
    ):
        status, headers, payload = parse(raw_exchange(port, request))
        assert status == expected, (request[:40], status, payload)
        if granian and (expected != 404 and payload == b""):  # Granian's own answer
            assert headers["connection"] == "close", (status, headers)
            continue
        assert headers["content-type"] == "application/json"
        assert headers["x-content-type-options"] == "nosniff"
        assert set(json.loads(payload)) == {"message"}


@pytest.mark.e2e
def test_nginx_errors_are_json(servers):
    port = servers["nginx"].port
    big_header = b"X-Big: " + b"a" * 20000 + b"\r\n"
    cases = (
        (b"GARBAGE\r\n\r\n", 400, {"message": "Bad Request"}),
        (b"GET /api/v1/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414,
         {"message": "URI Too Long"}),
        (b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n" + big_header + b"\r\n", 431,
         {"message": "Request Header Fields Too Large"}),
        (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 65537\r\n"
         b"Content-Type: application/json\r\n\r\n", 413,
         {"status": "fail", "message": "Request body too large: the limit is 65536 bytes."}),
        (b"GET /api/v1/health HTTP/1.1\r\nHost: evil.example:666/x?\r\n\r\n", 400,
         {"message": "Bad Request"}),
    )
    for request, expected, body in cases:
        status, headers, payload = parse(raw_exchange(port, request))
        assert status == expected, (request[:40], status, payload)
        assert headers["content-type"] == "application/json"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["access-control-allow-origin"] == "*"  # a browser client can read it
        assert json.loads(payload) == body


@pytest.mark.e2e
def test_a_method_nginx_refuses_gets_the_apps_json_405_with_allow(servers):
    status, headers, payload = parse(raw_exchange(
        servers["nginx"].port,
        b"TRACE /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
    assert status == 405 and headers["allow"] == "POST, OPTIONS"
    assert json.loads(payload) == {"message": "Method Not Allowed"}


@pytest.mark.e2e
def test_an_8_kib_authorization_header_still_gets_the_app_json_401_through_nginx(servers):
    port = servers["nginx"].port
    request = (b"GET /api/v1/auth/user HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
               + b"x" * 8192 + b"\r\nConnection: close\r\n\r\n")
    status, headers, payload = parse(raw_exchange(port, request))
    assert status == 401
    assert json.loads(payload) == {"message": "Invalid token. Please log in again."}


# -- nginx alone: 502, 504 and the per-address rate limit ------------------------------------

@pytest.fixture
def nginx_alone(tmp_path):
    """Run nginx on a rendered config (no bin/serve): the template, as a deployment uses it."""
    nginx = front.find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed (bin/serve installs it as root)")
    user = front.nginx_user()
    procs = []
    runtimes = []

    def start(upstreams: list[str], **options) -> int:
        runtime = front.make_runtime_dir(tmp_path, user, 4_000_000 + len(procs))
        runtimes.append(runtime)
        port = plumbing.free_port()
        conf = runtime / "nginx.conf"
        conf.write_text(front.render(upstreams, f"127.0.0.1:{port}", runtime, **options))
        ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid}
        procs.append(subprocess.Popen([nginx, "-e", "stderr", "-p", str(runtime), "-c",
                                       str(conf)], stderr=subprocess.PIPE, **ids))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                assert time.monotonic() < deadline, procs[-1].stderr
                time.sleep(0.05)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
    for runtime in runtimes:
        shutil.rmtree(runtime, ignore_errors=True)


def silent_upstream() -> tuple[str, socket.socket]:
    """An upstream that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}", listener


@pytest.mark.e2e
def test_nginx_answers_502_and_504_as_json(nginx_alone, tmp_path):
    dead = nginx_alone([f"unix:{tmp_path}/nobody-here.sock"])
    status, headers, payload = parse(raw_exchange(
        dead, b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
    assert status == 502 and headers["content-type"] == "application/json"
    assert json.loads(payload)["message"].startswith("Bad Gateway")

    address, listener = silent_upstream()
    try:
        slow = nginx_alone([address], upstream_timeout=1)
        status, headers, payload = parse(raw_exchange(
            slow, b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
        assert status == 504 and headers["content-type"] == "application/json"
        assert json.loads(payload)["message"].startswith("Gateway Timeout")
    finally:
        listener.close()


# nginx's ceiling for an application quota of 3 a minute: 6 a minute, a burst of 3.
FLOOD = settings.FrontSettings(auth_rate_limit=3)
# No rate limit; one login, register or password change in flight in all.
ONE_AT_ONCE = settings.FrontSettings(auth_rate_limit=0, auth_in_flight=1)


@pytest.mark.e2e
def test_the_rate_limit_answers_429_with_retry_after_per_address(nginx_alone, tmp_path):
    port = nginx_alone([f"unix:{tmp_path}/nobody-here.sock"], limits=FLOOD)
    statuses = []
    for _ in range(6):
        status, headers, payload = parse(raw_exchange(
            port, b"POST /api/v1/auth/login/ HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Length: 0\r\nConnection: close\r\n\r\n"))
        statuses.append(status)
    assert statuses[:4] == [502] * 4 and statuses[4:] == [429, 429], statuses
    assert headers["retry-after"] == "10"
    assert headers["access-control-expose-headers"] == "Retry-After, RateLimit, RateLimit-Policy"
    assert headers["ratelimit-policy"] == '"auth";q=3;w=60'
    assert headers["ratelimit"] == '"auth";r=0;t=10'
    assert json.loads(payload) == {"status": "fail",
                                   "message": "Too many requests. Try again in 10 seconds."}


def _auth_request(method: str, path: str, body: bytes = b"{}") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


@pytest.mark.e2e
def test_password_changes_share_the_login_rate_limit(nginx_alone, tmp_path):
    """PUT /auth/password may hash a password like login and register: the same per-address
    limit, counted together with them (docs/API.md §8.1)."""
    port = nginx_alone([f"unix:{tmp_path}/nobody-here.sock"], limits=FLOOD)
    statuses = []
    for method, path in (("POST", f"{API}/auth/login"), ("PUT", f"{API}/auth/password"),
                         ("PUT", f"{API}/auth/password/"), ("POST", f"{API}/auth/login"),
                         ("PUT", f"{API}/auth/password"), ("POST", f"{API}/auth/login")):
        status, headers, payload = parse(raw_exchange(port, _auth_request(method, path)))
        statuses.append(status)
    assert statuses == [502, 502, 502, 502, 429, 429], statuses
    assert json.loads(payload) == {"status": "fail",
                                   "message": "Too many requests. Try again in 10 seconds."}


@pytest.mark.e2e
def test_the_login_gate_holds_password_changes_too(nginx_alone):
    """One hash in flight at most (the gate of 1): a second password change is the §8.1 503
    at once, while the first is still with the (silent) application."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        port = nginx_alone([f"127.0.0.1:{listener.getsockname()[1]}"], limits=ONE_AT_ONCE,
                           upstream_timeout=20)
        first = socket.create_connection(("127.0.0.1", port), timeout=30)
        first.sendall(_auth_request("PUT", f"{API}/auth/password"))
        deadline = time.monotonic() + 10
        while not held:  # the first one is through the gate, with the application
            assert time.monotonic() < deadline, "the first request never reached the upstream"
            time.sleep(0.02)
        for path in (f"{API}/auth/password", f"{API}/auth/login"):
            method = "PUT" if path.endswith("password") else "POST"
            status, headers, payload = parse(raw_exchange(port, _auth_request(method, path)))
            assert status == 503, (path, status, payload)
            assert headers["retry-after"] == "1"
            assert json.loads(payload) == {
                "message": "Service Unavailable: too many logins in progress"}
        first.close()
    finally:
        listener.close()
        for sock in held:
            sock.close()


@pytest.mark.e2e
@pytest.mark.parametrize("path", [f"{API}/auth/login", f"{API}/auth/password"])
def test_a_broken_chunked_body_past_the_rate_limit_is_a_json_400(nginx_alone, tmp_path, path):
    """Once the rate limit answers 429, nginx discards the body; a broken chunked body found
    then is a 400 that must get the JSON page too (not nginx's built-in HTML one)."""
    port = nginx_alone([f"unix:{tmp_path}/nobody-here.sock"], limits=FLOOD)
    for _ in range(4):
        assert parse(raw_exchange(port, _auth_request("POST", f"{API}/auth/login")))[0] == 502
    method = "PUT" if path.endswith("password") else "POST"
    request = chunked(path, b"zz\r\n{}\r\n0\r\n\r\n").replace(b"POST", method.encode(), 1)
    status, headers, payload = parse(raw_exchange(port, request))
    assert status == 400, (status, payload)
    assert headers["content-type"] == "application/json"
    assert json.loads(payload) == {"message": "Bad Request"}


@pytest.mark.e2e
def test_the_login_gate_answers_its_own_errors_in_json(nginx_alone, tmp_path):
    """An HTTP/1.0 login without Host passes the front and reaches the gate without one: the
    gate's 400 is JSON like every other answer of nginx."""
    port = nginx_alone([f"unix:{tmp_path}/nobody-here.sock"], limits=ONE_AT_ONCE)
    status, headers, payload = parse(raw_exchange(
        port, b"POST /api/v1/auth/login HTTP/1.0\r\nContent-Type: application/json\r\n"
              b"Content-Length: 2\r\n\r\n{}"))
    assert status == 400, (status, payload)
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(payload) == {"message": "Bad Request"}


def test_render_takes_several_upstreams_and_refuses_injection(tmp_path):
    text = front.render(["unix:/run/a.sock", "10.0.0.2:8000", "[::1]:8001"], "0.0.0.0:80",
                        tmp_path, limits=settings.FrontSettings(trusted_proxies=("10.0.0.0/8",)))
    assert "server unix:/run/a.sock;" in text and "server 10.0.0.2:8000;" in text
    assert "server [::1]:8001;" in text and "set_real_ip_from 10.0.0.0/8;" in text
    assert "{{" not in text
    for bad in (["127.0.0.1:80; evil"], ["unix:/x;y"]):
        with pytest.raises(front.FrontError):
            front.render(bad, "127.0.0.1:80", tmp_path)
    with pytest.raises(SettingError, match="^HOST="):
        settings.listen_address("127.0.0.1; evil", 80)
    with pytest.raises(SettingError, match="^TRUSTED_PROXIES="):
        settings.parse_trusted_proxies("10.0.0.1, evil")


@pytest.mark.parametrize(("env", "gate"), [
    ({}, "limit_conn widgetsvc_auth_all 4;"),  # the hashing slots given
    ({"AUTH_IN_FLIGHT": "2"}, "limit_conn widgetsvc_auth_all 2;"),
    ({"AUTH_IN_FLIGHT": "0"}, None),  # no gate
])
def test_the_login_gate_is_the_hashing_slots_unless_set(tmp_path, env, gate):
    limits = settings.FrontSettings.from_env({"AUTH_RATE_LIMIT": "12", **env})
    text = front.render(["unix:/run/a.sock"], "127.0.0.1:80", tmp_path, limits=limits,
                        hash_slots=4)
    gates = [line.strip() for line in text.splitlines() if "widgetsvc_auth_all" in line
             and line.strip().startswith("limit_conn ")]
    assert gates == ([gate] if gate else [])
    # nginx is the flood ceiling: twice the application's quota, a burst of all of it; its
    # 429 names the application's policy
    assert "rate=24r/m;" in text and "burst=12 nodelay;" in text
    assert """add_header RateLimit-Policy '"auth";q=12;w=60' always;""" in text
