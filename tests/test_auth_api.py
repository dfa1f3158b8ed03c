"""The auth part of the contract (docs/API.md §1, §3, §4, §5, §6), through the WSGI app.

Every body test runs with a JSON, a url-encoded form and a multipart form body (``kind``).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import jwt
import pytest
import webtest

from tests.helpers import (
    API,
    EXPIRED,
    INVALID,
    KID,
    LOGIN,
    LOGOUT,
    MISSING,
    PASSWORD,
    REGISTER,
    REVOKED,
    SECRET,
    USER,
    VALIDATION_FAILED,
    assert_no_token,
    assert_token_error,
    b64url,
    bearer,
    claims_for,
    forge,
    login,
    now_ts,
    segment,
    segment_json,
    sign,
)
from tests.helpers_sql import run_sql
from widgetsvc import timefmt
from widgetsvc.app import create_app

TOO_SHORT = "Password must be at least 8 characters."
TOO_LONG = "Password must be at most 72 bytes."
LOGIN_FAILED = {"status": "fail", "message": "email or password does not match"}
LOGGED_OUT = {"status": "success", "message": "successfully logged out"}
MALFORMED_JSON = {"status": "fail", "message": "Malformed JSON: the body could not be parsed."}
NOT_AN_OBJECT = {"status": "fail", "message": "The JSON body must be an object."}
TOO_LARGE = {"status": "fail", "message": "Request body too large: the limit is 65536 bytes."}
MAX_BODY = 65_536

DATE_RE = re.compile(
    r"^(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])/\d\d (0[1-9]|1[0-2]):[0-5]\d:[0-5]\d (AM|PM) UTC$"
)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

KINDS = ["json", "form", "multipart"]
BOUNDARY = "widgetsvc-test-boundary-7d1f"


# -- helpers -------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


def send(app, kind: str, url: str, fields: dict[str, str], status, headers=None):
    """POST ``fields`` as a JSON object, a url-encoded form or a multipart form."""
    if kind == "json":
        return app.post_json(url, fields, status=status, headers=headers)
    if kind == "form":
        return app.post(url, fields, status=status, headers=headers)
    return app.post(url, fields, content_type="multipart/form-data", status=status,
                    headers=headers)


def encode(kind: str, fields: dict[str, str]) -> tuple[bytes, str]:
    """The raw body and its Content-Type, built by hand (for exact sizes)."""
    if kind == "json":
        return json.dumps(fields).encode("utf-8"), "application/json"
    if kind == "form":
        return urlencode(fields).encode("ascii"), "application/x-www-form-urlencoded"
    body = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode("utf-8") + b"\r\n"
        for name, value in fields.items()
    ) + f"--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def raw_post(app, url: str, body: bytes, content_type: str | None, status, headers=None):
    kwargs = {"content_type": content_type} if content_type is not None else {}
    return app.request(url, method="POST", body=body, status=status, headers=headers or {},
                       **kwargs)


def assert_json(resp, status: int, body: dict) -> None:
    assert resp.status_int == status
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.body) == body


def invalid_input(**errors: str) -> dict:
    return {"message": VALIDATION_FAILED, "errors": errors}


def register(app, email: str, password: str = PASSWORD):
    return app.post_json(REGISTER, {"email": email, "password": password}, status=201)


@pytest.fixture
def account(users):
    """A registered (non-admin) user's row."""
    return users.create("owner@example.com", PASSWORD, admin=False)


@pytest.fixture
def make_app(config, db):
    def make(clock: timefmt.Clock | None = None, **overrides) -> webtest.TestApp:
        return webtest.TestApp(create_app(replace(config, **overrides), db=db, clock=clock))

    return make


TOKEN_ENDPOINTS = [("GET", USER), ("POST", LOGOUT)]


def call(app, method: str, url: str, headers: dict[str, str], status):
    return app.request(url, method=method, headers=headers, status=status)


# -- §1 request bodies ---------------------------------------------------------------------

@pytest.mark.parametrize("url", [REGISTER, LOGIN])
def test_no_body_and_no_content_type_is_an_empty_object(app, url):
    resp = app.post(url, status=400)
    assert "Content-Type" not in resp.request.headers
    assert_json(resp, 400, invalid_input(email=MISSING, password=MISSING))


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("content_type", [
    "application/json",
    "application/x-www-form-urlencoded",
    f"multipart/form-data; boundary={BOUNDARY}",
])
def test_empty_body_of_each_type_misses_both_fields(app, url, content_type):
    resp = raw_post(app, url, b"", content_type, status=400)
    assert_json(resp, 400, invalid_input(email=MISSING, password=MISSING))


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
def test_each_missing_field_is_reported(app, kind, url):
    resp = send(app, kind, url, {"email": "someone@example.com"}, status=400)
    assert_json(resp, 400, invalid_input(password=MISSING))
    resp = send(app, kind, url, {"password": PASSWORD}, status=400)
    assert_json(resp, 400, invalid_input(email=MISSING))
    resp = send(app, kind, url, {"other": "x"}, status=400)
    assert_json(resp, 400, invalid_input(email=MISSING, password=MISSING))


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize(("content_type", "media_type"), [
    ("text/plain", "text/plain"),
    ("text/plain; charset=utf-8", "text/plain"),
    ("application/xml", "application/xml"),
    ("text/json", "text/json"),
    ("application/octet-stream", "application/octet-stream"),
    ("TEXT/HTML", "text/html"),
])
def test_other_content_type_is_415(app, url, content_type, media_type):
    body = json.dumps({"email": "a@example.com", "password": PASSWORD}).encode()
    resp = raw_post(app, url, body, content_type, status=415)
    assert_json(resp, 415, {
        "status": "fail",
        "message": f"Unsupported media type {media_type}: send application/json or a form.",
    })


def test_a_body_without_content_type_is_415(app):
    body = json.dumps({"email": "a@example.com", "password": PASSWORD}).encode()
    resp = raw_post(app, REGISTER, body, None, status=415)
    assert "Content-Type" not in resp.request.headers
    assert_json(resp, 415, {"status": "fail",
                            "message": "A body needs a Content-Type: application/json."})


@pytest.mark.parametrize("content_type", [
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/x-www-form-urlencoded; charset=UTF-8",
])
def test_content_type_parameters_and_case_are_accepted(app, content_type):
    fields = {"email": "ct@example.com", "password": PASSWORD}
    body = (json.dumps(fields) if "json" in content_type.lower() else urlencode(fields)).encode()
    resp = raw_post(app, REGISTER, body, content_type, status=201)
    assert resp.json["message"] == "successfully registered"


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("body", [
    b'{"email": "a@example.com", "password": ',
    b"{'email': 'a@example.com'}",
    b"email=a@example.com",
    b'{"email": "a@example.com"} trailing',
    b"\xff\xfe{}",
    b'{"email": "\xff@example.com", "password": "Secret-pass-1"}',
])
def test_malformed_json_is_400(app, url, body):
    resp = raw_post(app, url, body, "application/json", status=400)
    assert_json(resp, 400, MALFORMED_JSON)


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("body", [
    b"[]",
    b'[{"email": "a@example.com", "password": "Secret-pass-1"}]',
    b'"a@example.com"',
    b"42",
    b"null",
    b"true",
])
def test_json_that_is_not_an_object_is_400(app, url, body):
    resp = raw_post(app, url, body, "application/json", status=400)
    assert_json(resp, 400, NOT_AN_OBJECT)


def test_json_nested_too_deeply_is_400(app):
    body = ('{"email": "a@example.com", "password": "Secret-pass-1", "x": '
            + '{"a": ' * 50 + "1" + "}" * 50 + "}").encode()
    resp = raw_post(app, REGISTER, body, "application/json", status=400)
    assert_json(resp, 400, {"status": "fail", "message": "The JSON body is nested too deeply."})


@pytest.mark.parametrize("password", ["\ud800" + "a" * 8, "a" * 8 + "\udfff"])
def test_json_string_with_a_lone_surrogate_is_a_client_error(app, password):
    """JSON escapes can spell a lone UTF-16 surrogate, which is no Unicode text: 400, not 500."""
    body = json.dumps({"email": "a@example.com", "password": password}).encode()
    assert b"\\ud" in body
    resp = raw_post(app, REGISTER, body, "application/json", status=400)
    assert_json(resp, 400, MALFORMED_JSON)
    email_body = json.dumps({"email": "\udc00a@example.com", "password": PASSWORD}).encode()
    resp = raw_post(app, REGISTER, email_body, "application/json", status=400)
    assert_json(resp, 400, MALFORMED_JSON)


def test_form_body_that_is_not_utf8_is_400(app):
    resp = raw_post(app, REGISTER, b"email=%FF%FE@example.com&password=Secret-pass-1",
                    "application/x-www-form-urlencoded", status=400)
    assert_json(resp, 400, {"status": "fail",
                            "message": "Malformed form body: it is not valid UTF-8."})


@pytest.mark.parametrize(("body", "content_type"), [
    (b"hello", f"multipart/form-data; boundary={BOUNDARY}"),
    (b"hello", "multipart/form-data"),
    (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="email"\r\n\r\n'
     "a@example.com\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"),
    (f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\n"
     f"a@example.com\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"),
    (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="email"\r\n\r\n'.encode()
     + b"\xff@example.com\r\n" + f"--{BOUNDARY}--\r\n".encode(),
     f"multipart/form-data; boundary={BOUNDARY}"),
])
def test_malformed_multipart_is_400(app, body, content_type):
    resp = raw_post(app, REGISTER, body, content_type, status=400)
    assert_json(resp, 400, {"status": "fail", "message": "Malformed multipart form body."})


def test_multipart_file_parts_are_ignored(app):
    body = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="email"; '
            'filename="email.txt"\r\nContent-Type: text/plain\r\n\r\n'
            f"file@example.com\r\n"
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="password"\r\n\r\n'
            f"{PASSWORD}\r\n--{BOUNDARY}--\r\n").encode()
    resp = raw_post(app, REGISTER, body, f"multipart/form-data; boundary={BOUNDARY}", status=400)
    assert_json(resp, 400, invalid_input(email=MISSING))


def padded(kind: str, size: int, email: str) -> tuple[bytes, str]:
    """Valid credentials plus a ``padding`` field, exactly ``size`` bytes in all."""
    fields = {"email": email, "password": PASSWORD, "padding": ""}
    base, _ = encode(kind, fields)
    fields["padding"] = "x" * (size - len(base))
    body, content_type = encode(kind, fields)
    assert len(body) == size
    return body, content_type


def test_a_body_of_exactly_the_limit_is_processed(app, kind):
    body, content_type = padded(kind, MAX_BODY, "limit@example.com")
    resp = raw_post(app, REGISTER, body, content_type, status=201)
    assert resp.json["message"] == "successfully registered"
    body, content_type = padded(kind, MAX_BODY, "limit@example.com")
    resp = raw_post(app, LOGIN, body, content_type, status=200)
    assert resp.json["message"] == "successfully logged in"


@pytest.mark.parametrize("size", [MAX_BODY + 1, MAX_BODY + 4096, 1024 * 1024])
def test_a_body_over_the_limit_is_413(app, users, kind, size):
    body, content_type = padded(kind, size, "big@example.com")
    assert_json(raw_post(app, REGISTER, body, content_type, status=413), 413, TOO_LARGE)
    # nothing was registered
    resp = app.post_json(LOGIN, {"email": "big@example.com", "password": PASSWORD}, status=401)
    assert_json(resp, 401, LOGIN_FAILED)
    users.create("big@example.com", PASSWORD, admin=False)
    body, content_type = padded(kind, size, "big@example.com")
    assert_json(raw_post(app, LOGIN, body, content_type, status=413), 413, TOO_LARGE)


# -- §1 responses ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", [
    "/", "/nope", f"{API}", f"{API}/auth", f"{API}/auth/unknown", f"{API}/auth/user/extra",
    f"{API}/auth/registers", "/api/v2/auth/login",
])
def test_unknown_path_is_404_json(app, method, path):
    resp = app.request(path, method=method, status=404)
    assert_json(resp, 404, {"message": "Not Found"})


@pytest.mark.parametrize(("method", "url", "allow"), [
    ("GET", REGISTER, "POST, OPTIONS"),
    ("PUT", REGISTER, "POST, OPTIONS"),
    ("DELETE", LOGIN, "POST, OPTIONS"),
    ("PATCH", LOGIN, "POST, OPTIONS"),
    ("POST", USER, "GET, HEAD, OPTIONS"),
    ("DELETE", USER, "GET, HEAD, OPTIONS"),
    ("GET", LOGOUT, "POST, OPTIONS"),
    ("PUT", LOGOUT, "POST, OPTIONS"),
])
def test_wrong_method_is_405_json_with_allow(app, method, url, allow):
    resp = app.request(url, method=method, status=405)
    assert_json(resp, 405, {"message": "Method Not Allowed"})
    assert resp.headers["Allow"] == allow


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "*/*", "text/plain"])
def test_errors_are_json_whatever_the_client_accepts(app, accept):
    headers = {"Accept": accept}
    assert_json(app.get("/nope", headers=headers, status=404), 404, {"message": "Not Found"})
    assert_no_token(app.get(USER, headers=headers, status=401))
    resp = app.post_json(LOGIN, {}, headers=headers, status=400)
    assert_json(resp, 400, invalid_input(email=MISSING, password=MISSING))
    resp = app.post_json(LOGIN, {"email": "x@example.com", "password": PASSWORD},
                         headers=headers, status=401)
    assert_json(resp, 401, LOGIN_FAILED)


def test_cors_headers_on_answers_and_errors(app):
    origin = {"Origin": "https://client.example.org"}
    exposed = ("Link, Location, Total-Count, WWW-Authenticate, ETag, Retry-After, "
               "RateLimit-Policy, RateLimit")
    resp = app.post_json(REGISTER, {"email": "cors@example.com", "password": PASSWORD},
                         headers=origin, status=201)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = app.get(USER, headers=origin, status=401)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Access-Control-Expose-Headers"] == exposed


@pytest.mark.parametrize(("url", "method"), [(REGISTER, "POST"), (LOGIN, "POST"),
                                             (USER, "GET"), (LOGOUT, "POST")])
def test_cors_preflight_is_answered_without_a_token(app, url, method):
    resp = app.options(url, headers={
        "Origin": "https://client.example.org",
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    }, status=200)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # a GET route also answers HEAD (docs/API.md §8.2)
    assert resp.headers["Access-Control-Allow-Methods"] == (
        "GET, HEAD" if method == "GET" else method)
    assert resp.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert resp.body == b""


# -- §3 e-mail ------------------------------------------------------------------------------

VALID_EMAILS = [
    "user@example.com",
    "first.last+tag@sub.example.co.uk",
    "UPPER.Case@Example.COM",
    "o'brien_1-2@example.ie",
    "user@xn--bcher-kva.example",
    "user@bücher.de",
    "a" * 243 + "@example.com",  # 255 characters
]

INVALID_EMAILS = [
    "",
    "plainaddress",
    "@example.com",
    "user@",
    "user@@example.com",
    "user@exa@mple.com",
    "user name@example.com",
    " user@example.com",
    "user@example.com ",
    "user@exa mple.com",
    "user\t@example.com",
    "user\n@example.com",
    "user\x00@example.com",
    "user@example..com",
    "us..er@example.com",
    ".user@example.com",
    "user.@example.com",
    "user@localhost",
    "user@LocalHost",
    "user@127.0.0.1",
    "user@[127.0.0.1]",
    "user@[::1]",
    "user@example",
    "user@-example.com",
    "user@example-.com",
    "user@exam_ple.com",
    "user@.example.com",
    "user@example.123",
    '"quoted"@example.com',
    "user(comment)@example.com",
    "user<x>@example.com",
    "a" * 244 + "@example.com",  # 256 characters
]


@pytest.mark.parametrize("email", VALID_EMAILS)
def test_valid_email_registers_and_logs_in(app, kind, email):
    resp = send(app, kind, REGISTER, {"email": email, "password": PASSWORD}, status=201)
    assert resp.json["message"] == "successfully registered"
    resp = send(app, kind, LOGIN, {"email": email, "password": PASSWORD}, status=200)
    user = app.get(USER, headers=bearer(resp.json["access_token"]), status=200).json
    assert user["email"] == email


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("email", INVALID_EMAILS)
def test_invalid_email_is_rejected(app, kind, url, email):
    resp = send(app, kind, url, {"email": email, "password": PASSWORD}, status=400)
    assert_json(resp, 400, invalid_input(email=f"{email} is not a valid email"))


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
def test_all_failing_fields_are_reported_at_once(app, kind, url):
    resp = send(app, kind, url, {"email": "nope", "password": "short"}, status=400)
    assert_json(resp, 400, invalid_input(email="nope is not a valid email", password=TOO_SHORT))
    resp = send(app, kind, url, {"password": "x" * 73}, status=400)
    assert_json(resp, 400, invalid_input(email=MISSING, password=TOO_LONG))
    resp = send(app, kind, url, {"email": "user@localhost"}, status=400)
    assert_json(resp, 400, invalid_input(email="user@localhost is not a valid email",
                                         password=MISSING))


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("value", [123, None, True, [], {}, ["a@example.com"]])
def test_json_values_of_the_wrong_type_are_rejected(app, url, value):
    resp = app.post_json(url, {"email": value, "password": PASSWORD}, status=400)
    assert_json(resp, 400, invalid_input(email="email must be a string"))
    resp = app.post_json(url, {"email": "a@example.com", "password": value}, status=400)
    assert_json(resp, 400, invalid_input(password="password must be a string"))


def test_extra_fields_are_ignored_and_never_make_an_admin(app, kind):
    fields = {"email": "sneaky@example.com", "password": PASSWORD, "admin": "true",
              "public_id": str(uuid.uuid4())}
    token = send(app, kind, REGISTER, fields, status=201).json["access_token"]
    user = app.get(USER, headers=bearer(token), status=200).json
    assert user["admin"] is False
    assert user["public_id"] != fields["public_id"]
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["admin"] is False


def test_json_admin_true_is_ignored(app):
    token = app.post_json(REGISTER, {"email": "sneaky@example.com", "password": PASSWORD,
                                     "admin": True}, status=201).json["access_token"]
    assert app.get(USER, headers=bearer(token)).json["admin"] is False


# -- §3 password ----------------------------------------------------------------------------

SHORT_PASSWORDS = ["", "a", "1234567", "ééééééé", "😀" * 7, "       ", "e\u0301" * 3 + "x"]
LONG_PASSWORDS = ["a" * 73, "é" * 36 + "a", "😀" * 19, "€" * 25, "a" * 1000]
GOOD_PASSWORDS = [
    "12345678",
    "éééééééé",      # 8 code points, 16 bytes
    "😀" * 8,         # 8 code points, 32 bytes
    "a" * 72,
    "é" * 36,         # 72 bytes
    "😀" * 18,        # 72 bytes
    "€" * 24,         # 72 bytes
    "pass word 1",
    "with\x00nul-byte",
]


def test_password_samples_have_the_sizes_they_claim():
    assert all(len(p) < 8 for p in SHORT_PASSWORDS)
    assert all(len(p.encode()) > 72 and len(p) >= 8 for p in LONG_PASSWORDS)
    assert all(len(p) >= 8 and len(p.encode()) <= 72 for p in GOOD_PASSWORDS)
    assert len("é" * 36 + "a") == 37 and len(("é" * 36 + "a").encode()) == 73


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("password", SHORT_PASSWORDS)
def test_too_short_password_is_rejected(app, users, kind, url, password):
    users.create("short@example.com", PASSWORD, admin=False)
    resp = send(app, kind, url, {"email": "short@example.com", "password": password},
                status=400)
    assert_json(resp, 400, invalid_input(password=TOO_SHORT))


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("password", LONG_PASSWORDS)
def test_too_long_password_is_rejected(app, users, kind, url, password):
    users.create("long@example.com", PASSWORD, admin=False)
    resp = send(app, kind, url, {"email": "long@example.com", "password": password},
                status=400)
    assert_json(resp, 400, invalid_input(password=TOO_LONG))


@pytest.mark.parametrize("password", GOOD_PASSWORDS)
def test_good_password_registers_and_logs_in(app, kind, password):
    fields = {"email": "good@example.com", "password": password}
    send(app, kind, REGISTER, fields, status=201)
    resp = send(app, kind, LOGIN, fields, status=200)
    assert resp.json["message"] == "successfully logged in"
    wrong = password[:-1] + ("b" if password[-1] != "b" else "c")
    resp = send(app, kind, LOGIN, {"email": "good@example.com", "password": wrong}, status=401)
    assert_json(resp, 401, LOGIN_FAILED)


def test_a_72_byte_password_is_never_truncated(app, kind):
    password = "é" * 36
    send(app, kind, REGISTER, {"email": "t@example.com", "password": password}, status=201)
    # One byte more is refused, not silently cut back to the 72 that would match.
    resp = send(app, kind, LOGIN, {"email": "t@example.com", "password": password + "a"},
                status=400)
    assert_json(resp, 400, invalid_input(password=TOO_LONG))
    # Every one of the 72 bytes counts.
    resp = send(app, kind, LOGIN, {"email": "t@example.com", "password": "é" * 35 + "ë"},
                status=401)
    assert_json(resp, 401, LOGIN_FAILED)


def test_a_nul_byte_does_not_end_the_password(app, kind):
    send(app, kind, REGISTER, {"email": "nul@example.com", "password": "abcdefgh\x00secret"},
         status=201)
    resp = send(app, kind, LOGIN, {"email": "nul@example.com", "password": "abcdefgh\x00other!"},
                status=401)
    assert_json(resp, 401, LOGIN_FAILED)
    resp = send(app, kind, LOGIN, {"email": "nul@example.com", "password": "abcdefgh"},
                status=401)
    assert_json(resp, 401, LOGIN_FAILED)


# -- §4 register conflicts and login failures ------------------------------------------------

@pytest.mark.parametrize(("first", "second"), [
    ("taken@example.com", "taken@example.com"),
    ("taken@example.com", "TAKEN@EXAMPLE.COM"),
    ("Taken@Example.com", "taken@example.COM"),
])
def test_register_an_email_taken_in_any_case_is_409(app, kind, first, second):
    send(app, kind, REGISTER, {"email": first, "password": PASSWORD}, status=201)
    resp = send(app, kind, REGISTER, {"email": second, "password": "Other-pass-2"}, status=409)
    assert_json(resp, 409, {"status": "fail", "message": f"{second} is already registered"})
    # The first account is untouched: its password still works, the second one does not.
    send(app, kind, LOGIN, {"email": first, "password": PASSWORD}, status=200)
    resp = send(app, kind, LOGIN, {"email": first, "password": "Other-pass-2"}, status=401)
    assert_json(resp, 401, LOGIN_FAILED)


def test_validation_comes_before_the_conflict(app, kind):
    send(app, kind, REGISTER, {"email": "taken@example.com", "password": PASSWORD}, status=201)
    resp = send(app, kind, REGISTER, {"email": "taken@example.com", "password": "short"},
                status=400)
    assert_json(resp, 400, invalid_input(password=TOO_SHORT))


def test_login_matches_the_email_in_any_case(app, kind):
    send(app, kind, REGISTER, {"email": "Mixed.Case@Example.com", "password": PASSWORD},
         status=201)
    for variant in ("mixed.case@example.com", "MIXED.CASE@EXAMPLE.COM", "Mixed.Case@Example.com"):
        resp = send(app, kind, LOGIN, {"email": variant, "password": PASSWORD}, status=200)
        user = app.get(USER, headers=bearer(resp.json["access_token"])).json
        assert user["email"] == "Mixed.Case@Example.com"  # stored as given


@pytest.mark.parametrize(("email", "password"), [
    ("nobody@example.com", PASSWORD),                  # unknown e-mail
    ("known@example.com", "Wrong-pass-1"),             # wrong password
    ("known@example.com", PASSWORD.upper()),           # passwords are case-sensitive
    ("known@example.com", PASSWORD + " "),
    ("known@example.co", PASSWORD),
])
def test_login_failure_is_401_with_one_body(app, users, kind, email, password):
    users.create("known@example.com", PASSWORD, admin=False)
    resp = send(app, kind, LOGIN, {"email": email, "password": password}, status=401)
    assert_json(resp, 401, LOGIN_FAILED)
    assert "access_token" not in resp.text


# -- §4 tokens: none, bad, expired, revoked, deleted user ------------------------------------

@pytest.mark.parametrize(("method", "url"), TOKEN_ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "   "}])
def test_no_token_is_401_unauthorized(app, method, url, headers):
    assert_no_token(call(app, method, url, headers, status=401))


@pytest.mark.parametrize(("method", "url"), TOKEN_ENDPOINTS)
@pytest.mark.parametrize("template", [
    "{token}",               # bare token, no scheme [fix]
    "Basic {token}",
    "Token {token}",
    "JWT {token}",
    "Bearer{token}",
    "Bearer:{token}",
    "Basic dXNlcjpwYXNz",
])
def test_a_token_without_the_bearer_scheme_is_rejected(app, user_token, method, url, template):
    """A bare token or another scheme carries no Bearer credentials: the no-token answer."""
    resp = call(app, method, url, {"Authorization": template.format(token=user_token)},
                status=401)
    assert_no_token(resp)
    # the token itself is fine
    app.get(USER, headers=bearer(user_token), status=200)


@pytest.mark.parametrize("template", [
    "bearer {token}", "BEARER {token}", "BeArEr {token}", "Bearer  {token}", " Bearer {token} ",
])
def test_the_bearer_scheme_is_case_insensitive(app, user_token, template):
    resp = app.get(USER, headers={"Authorization": template.format(token=user_token)},
                   status=200)
    assert resp.json["email"] == "user@example.com"


def bad_tokens(public_id) -> dict[str, str]:
    """Every kind of invalid token (for a user who exists)."""
    good = claims_for(public_id)
    valid = forge(good)
    head, body, sig = valid.split(".")
    other_claims = claims_for(public_id, admin=True)
    tampered_body = segment(other_claims)
    now = now_ts()
    return {
        "empty": "",
        "garbage": "not-a-jwt",
        "two segments": f"{head}.{body}",
        "four segments": f"{valid}.{sig}",
        "letters": "a.b.c",
        "bad base64": "!!!.???.***",
        "bad json": f"{b64url(b'not json')}.{b64url(b'not json')}.{sig}",
        "trailing junk": f"{valid} extra",
        "signature tampered": f"{head}.{body}.{sig[::-1]}",
        "signature truncated": f"{head}.{body}.{sig[:-4]}",
        "payload tampered": f"{head}.{tampered_body}.{sig}",
        "wrong secret": forge(good, secret="another-secret-that-is-long-enough-012345"),
        "alg none unsigned": jwt.encode(good, None, algorithm="none"),
        "alg none with signature": sign({"typ": "JWT", "alg": "none"}, good),
        "alg missing": sign({"typ": "JWT"}, good),
        "HS512": forge(good, algorithm="HS512"),
        "HS384": forge(good, algorithm="HS384"),
        "no exp": forge(good, drop=("exp",)),
        "no iat": forge(good, drop=("iat",)),
        "no sub": forge(good, drop=("sub",)),
        "no jti": forge(good, drop=("jti",)),
        "no claims": forge({}),
        "sub not a uuid": forge({**good, "sub": "not-a-uuid"}),
        "sub an email": forge({**good, "sub": "owner@example.com"}),
        "sub empty": forge({**good, "sub": ""}),
        "sub a number": forge({**good, "sub": 12345}),
        "sub null": forge({**good, "sub": None}),
        "jti a number": forge({**good, "jti": 42}),
        "jti empty": forge({**good, "jti": ""}),
        "jti too long": forge({**good, "jti": "j" * 65}),
        "exp a string": forge({**good, "exp": "tomorrow"}),
        "iat a string": forge({**good, "iat": "now"}),
        "exp null": forge({**good, "exp": None}),
        "iat in the future": forge({**good, "iat": now + 3600, "exp": now + 4500}),
        "nbf in the future": forge({**good, "nbf": now + 3600}),
        "payload a list": f"{head}.{b64url(b'[1, 2]')}.{sig}",
        "too long": forge({**good, "padding": "p" * 5000}),
        "unknown user": forge(claims_for(uuid.uuid4())),
    }


BAD_TOKEN_NAMES = list(bad_tokens(uuid.uuid4()))


@pytest.mark.parametrize(("method", "url"), TOKEN_ENDPOINTS)
@pytest.mark.parametrize("name", BAD_TOKEN_NAMES)
def test_a_bad_token_is_invalid(app, account, method, url, name):
    token = bad_tokens(account.public_id)[name]
    resp = call(app, method, url, {"Authorization": f"Bearer {token}"}, status=401)
    assert_token_error(resp, INVALID)


def test_a_forged_good_token_is_accepted(app, account):
    """The control for the bad-token cases: the same forging, done right, is a valid token."""
    token = forge(claims_for(account.public_id))
    assert app.get(USER, headers=bearer(token), status=200).json["email"] == "owner@example.com"


@pytest.mark.parametrize(("method", "url"), TOKEN_ENDPOINTS)
def test_an_expired_token_is_rejected(app, account, method, url):
    now = now_ts()
    token = forge(claims_for(account.public_id, iat=now - 4500, exp=now - 3600))
    resp = call(app, method, url, bearer(token), status=401)
    assert_token_error(resp, EXPIRED)


@pytest.mark.parametrize(("method", "url"), TOKEN_ENDPOINTS)
def test_an_expired_token_of_an_unknown_user_is_expired(app, method, url):
    now = now_ts()
    token = forge(claims_for(uuid.uuid4(), iat=now - 4500, exp=now - 3600))
    assert_token_error(call(app, method, url, bearer(token), status=401), EXPIRED)


@pytest.mark.parametrize("variant", [
    {"secret": "another-secret-that-is-long-enough-012345"},
    {"algorithm": "HS512"},
])
def test_an_expired_token_with_a_bad_signature_is_invalid_not_expired(app, account, variant):
    now = now_ts()
    token = forge(claims_for(account.public_id, iat=now - 4500, exp=now - 3600), **variant)
    assert_token_error(app.get(USER, headers=bearer(token), status=401), INVALID)


def test_the_leeway_tolerates_a_few_seconds_of_clock_skew(app, account):
    now = now_ts()
    token = forge(claims_for(account.public_id, iat=now - 900, exp=now - 2))
    app.get(USER, headers=bearer(token), status=200)
    token = forge(claims_for(account.public_id, iat=now + 2, exp=now + 902))
    app.get(USER, headers=bearer(token), status=200)


def test_logout_revokes_that_token_only(app, users):
    users.create("user@example.com", PASSWORD, admin=False)
    first, second = login(app, "user@example.com"), login(app, "user@example.com")
    assert first != second
    resp = app.post(LOGOUT, headers=bearer(first), status=200)
    assert_json(resp, 200, LOGGED_OUT)
    assert_token_error(app.get(USER, headers=bearer(first), status=401), REVOKED)
    assert_token_error(app.post(LOGOUT, headers=bearer(first), status=401), REVOKED)
    # the user's other token, and a new login, still work
    app.get(USER, headers=bearer(second), status=200)
    app.get(USER, headers=bearer(login(app, "user@example.com")), status=200)


def test_logout_with_a_body_still_logs_out(app, user_token, kind):
    resp = send(app, kind, LOGOUT, {"anything": "x"}, status=200, headers=bearer(user_token))
    assert_json(resp, 200, LOGGED_OUT)
    assert_token_error(app.get(USER, headers=bearer(user_token), status=401), REVOKED)


def test_authentication_comes_before_the_body(app):
    resp = raw_post(app, LOGOUT, b"{not json", "application/json", status=401,
                    headers={"Authorization": "Bearer not-a-jwt"})
    assert_token_error(resp, INVALID)
    resp = raw_post(app, LOGOUT, b"x" * (MAX_BODY + 1), "text/plain", status=401)
    assert_no_token(resp)


def test_revocation_is_by_jti(app, account):
    """A re-signed token that reuses a revoked ``jti`` stays revoked."""
    claims = claims_for(account.public_id)
    app.post(LOGOUT, headers=bearer(forge(claims)), status=200)
    again = forge({**claims, "exp": claims["exp"] + 60, "admin": True})
    assert_token_error(app.get(USER, headers=bearer(again), status=401), REVOKED)


def test_a_register_token_can_be_revoked(app, kind):
    token = send(app, kind, REGISTER, {"email": "r@example.com", "password": PASSWORD},
                 status=201).json["access_token"]
    app.post(LOGOUT, headers=bearer(token), status=200)
    assert_token_error(app.get(USER, headers=bearer(token), status=401), REVOKED)


def test_logout_records_the_revocation_until_the_token_expires(app, db, user_token):
    claims = jwt.decode(user_token, SECRET, algorithms=["HS256"])
    app.post(LOGOUT, headers=bearer(user_token), status=200)
    rows = run_sql(db, "auth_revoked_tokens")
    assert [(r["jti"], int(r["expires_at"].timestamp())) for r in rows] == [
        (claims["jti"], claims["exp"])
    ]


def test_logout_purges_expired_revocations(app, db, users):
    users.create("user@example.com", PASSWORD, admin=False)
    first, second = login(app, "user@example.com"), login(app, "user@example.com")
    app.post(LOGOUT, headers=bearer(first), status=200)
    run_sql(db, "attacks_insert_expired_revocations", prefix="long-expired-", count=1)
    assert "long-expired-1" in [r["jti"] for r in run_sql(db, "auth_revoked_tokens")]
    app.post(LOGOUT, headers=bearer(second), status=200)
    jtis = {r["jti"] for r in run_sql(db, "auth_revoked_tokens")}
    assert jtis == {jwt.decode(t, SECRET, algorithms=["HS256"])["jti"] for t in (first, second)}


@pytest.mark.parametrize(("method", "url"), TOKEN_ENDPOINTS)
def test_the_token_of_a_deleted_user_is_invalid(app, db, user_token, method, url):
    app.get(USER, headers=bearer(user_token), status=200)
    assert run_sql(db, "auth_delete_user_by_email", email="user@example.com") == 1
    assert_token_error(call(app, method, url, bearer(user_token), status=401), INVALID)


def test_the_token_of_a_deleted_user_stays_invalid_after_re_registering(app, db, user_token):
    assert run_sql(db, "auth_delete_user_by_email", email="user@example.com") == 1
    register(app, "user@example.com")
    assert_token_error(app.get(USER, headers=bearer(user_token), status=401), INVALID)


def test_the_database_decides_who_is_an_admin(app, db, users):
    users.create("user@example.com", PASSWORD, admin=False)
    users.create("admin@example.com", PASSWORD, admin=True)
    user_token, admin_token = login(app, "user@example.com"), login(app, "admin@example.com")
    assert app.get(USER, headers=bearer(user_token)).json["admin"] is False
    assert app.get(USER, headers=bearer(admin_token)).json["admin"] is True
    run_sql(db, "auth_set_admin_by_email", email="admin@example.com", admin=False)
    run_sql(db, "auth_set_admin_by_email", email="user@example.com", admin=True)
    assert app.get(USER, headers=bearer(admin_token)).json["admin"] is False
    assert app.get(USER, headers=bearer(user_token)).json["admin"] is True


def test_an_admin_claim_is_not_trusted(app, account):
    token = forge(claims_for(account.public_id, admin=True))
    assert app.get(USER, headers=bearer(token)).json["admin"] is False


@pytest.mark.parametrize("realm", ["users@example.org", "widgets API"])
def test_the_realm_is_configurable(make_app, account, realm):
    app = make_app(user_realm=realm)
    assert_no_token(app.get(USER, status=401), realm=realm)
    assert_token_error(app.get(USER, headers=bearer("x.y.z"), status=401), INVALID, realm=realm)
    now = now_ts()
    expired = forge(claims_for(account.public_id, iat=now - 4500, exp=now - 3600))
    assert_token_error(app.get(USER, headers=bearer(expired), status=401), EXPIRED, realm=realm)


def test_a_token_is_only_valid_with_the_configured_secret(make_app, users):
    users.create("user@example.com", PASSWORD, admin=False)
    other = make_app(secret_key="a-completely-different-secret-key-0123456789")
    token = login(other, "user@example.com")
    other.get(USER, headers=bearer(token), status=200)
    assert_token_error(make_app().get(USER, headers=bearer(token), status=401), INVALID)


# -- §5 bodies ------------------------------------------------------------------------------

TOKEN_KEYS = ["status", "message", "access_token", "token_type", "expires_in", "refresh_token",
              "refresh_expires_in"]
USER_KEYS = ["email", "public_id", "admin", "registered_on", "token_expires_in"]


def assert_token_body(resp, status: int, message: str, lifetime: int = 900) -> dict:
    assert resp.status_int == status
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Pragma"] == "no-cache"
    body = json.loads(resp.body)
    assert list(body) == TOKEN_KEYS
    assert body["status"] == "success"
    assert body["message"] == message
    assert body["token_type"] == "bearer"
    assert type(body["expires_in"]) is int and body["expires_in"] == lifetime
    assert isinstance(body["access_token"], str)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", body["access_token"])
    # §8.4: session, generation, 16 random bytes and a MAC in unpadded base64url; 30 days by
    # default
    assert re.fullmatch(r"[A-Za-z0-9_-]{75}", body["refresh_token"])
    assert type(body["refresh_expires_in"]) is int and body["refresh_expires_in"] == 30 * 86400
    return body


def test_register_answers_a_token_body(app, kind):
    resp = send(app, kind, REGISTER, {"email": "new@example.com", "password": PASSWORD},
                status=201)
    body = assert_token_body(resp, 201, "successfully registered")
    app.get(USER, headers=bearer(body["access_token"]), status=200)


def test_login_answers_a_token_body(app, users, kind):
    users.create("user@example.com", PASSWORD, admin=False)
    resp = send(app, kind, LOGIN, {"email": "user@example.com", "password": PASSWORD},
                status=200)
    body = assert_token_body(resp, 200, "successfully logged in")
    app.get(USER, headers=bearer(body["access_token"]), status=200)


def parse_date(text: str) -> datetime:
    return datetime.strptime(text, "%m/%d/%y %I:%M:%S %p UTC").replace(tzinfo=UTC)


def test_the_user_body(app):
    before = datetime.now(UTC).replace(microsecond=0)
    token = register(app, "Body.Test@Example.com").json["access_token"]
    after = datetime.now(UTC)
    resp = app.get(USER, headers=bearer(token), status=200)
    assert resp.headers["Content-Type"] == "application/json"
    body = json.loads(resp.body)
    assert list(body) == USER_KEYS
    assert body["email"] == "Body.Test@Example.com"
    assert UUID_RE.match(body["public_id"])
    assert body["public_id"] == jwt.decode(token, SECRET, algorithms=["HS256"])["sub"]
    assert body["admin"] is False
    assert DATE_RE.match(body["registered_on"]), body["registered_on"]
    assert before <= parse_date(body["registered_on"]) <= after
    assert re.fullmatch(r"00:1[45]:[0-5]\d", body["token_expires_in"]), body["token_expires_in"]


def test_the_user_body_of_an_admin(app, admin_token):
    body = app.get(USER, headers=bearer(admin_token), status=200).json
    assert list(body) == USER_KEYS
    assert body["email"] == "admin@example.com"
    assert body["admin"] is True


def test_registered_on_is_shown_in_utc_12_hour_format(app, users):
    users.create("user@example.com", PASSWORD, admin=False)
    token = login(app, "user@example.com")
    shown = app.get(USER, headers=bearer(token)).json["registered_on"]
    now = datetime.now(UTC)
    assert abs((parse_date(shown) - now).total_seconds()) < 60
    assert shown.endswith((" AM UTC", " PM UTC"))
    assert shown == timefmt.format_date(parse_date(shown))


@pytest.mark.parametrize(("lifetime", "advance", "expected"), [
    (900, 0, "00:14:59"),
    (900, 60, "00:13:59"),
    (900, 899, "00:00:00"),
    (60, 0, "00:00:59"),
    (3600, 0, "00:59:59"),
    (86_401, 0, "1 day, 00:00:00"),
    (2 * 86_400 + 3723 + 1, 0, "2 days, 01:02:03"),
    (86_400, 0, "23:59:59"),
])
def test_token_expires_in(make_app, users, lifetime, advance, expected):
    """With a fixed clock half-way through a second: ``exp - now`` is ``lifetime - 0.5``."""
    users.create("user@example.com", PASSWORD, admin=False)
    clock = timefmt.FixedClock(datetime.now(UTC).replace(microsecond=500_000)
                               - timedelta(seconds=1))
    app = make_app(clock=clock, token_lifetime=lifetime)
    resp = app.post_json(LOGIN, {"email": "user@example.com", "password": PASSWORD})
    assert_token_body(resp, 200, "successfully logged in", lifetime=lifetime)
    clock.advance(seconds=advance)
    body = app.get(USER, headers=bearer(resp.json["access_token"]), status=200).json
    assert body["token_expires_in"] == expected


# -- §6 tokens ------------------------------------------------------------------------------

def test_the_jwt_header_and_claims(app, users):
    users.create("user@example.com", PASSWORD, admin=False)
    before = now_ts()
    resp = app.post_json(LOGIN, {"email": "user@example.com", "password": PASSWORD})
    after = now_ts()
    token, expires_in = resp.json["access_token"], resp.json["expires_in"]
    assert segment_json(token, 0) == {"typ": "JWT", "alg": "HS256", "kid": KID}
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "alg": "HS256", "kid": KID}
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims == segment_json(token, 1)
    assert set(claims) == {"exp", "iat", "sub", "jti", "admin", "sid"}
    assert str(uuid.UUID(claims["sid"])) == claims["sid"]
    assert all(type(claims[k]) is int for k in ("exp", "iat"))
    assert before <= claims["iat"] <= after
    assert claims["exp"] - claims["iat"] == expires_in == 900
    assert str(uuid.UUID(claims["sub"])) == claims["sub"]
    assert claims["sub"] == app.get(USER, headers=bearer(token)).json["public_id"]
    assert claims["admin"] is False
    assert isinstance(claims["jti"], str) and 1 <= len(claims["jti"]) <= 64


def test_the_admin_claim_says_what_the_user_was(app, admin_token):
    claims = jwt.decode(admin_token, SECRET, algorithms=["HS256"])
    assert claims["admin"] is True


def test_every_token_has_its_own_jti(app, users):
    users.create("user@example.com", PASSWORD, admin=False)
    tokens = [register(app, "other@example.com").json["access_token"]]
    tokens += [login(app, "user@example.com") for _ in range(6)]
    jtis = [jwt.decode(t, SECRET, algorithms=["HS256"])["jti"] for t in tokens]
    assert len(set(jtis)) == len(jtis)
    assert len(set(tokens)) == len(tokens)


@pytest.mark.parametrize("lifetime", [1, 60, 3600, 86_400 * 2])
def test_the_lifetime_comes_from_the_configuration(make_app, users, lifetime):
    users.create("user@example.com", PASSWORD, admin=False)
    app = make_app(token_lifetime=lifetime)
    resp = app.post_json(LOGIN, {"email": "user@example.com", "password": PASSWORD})
    assert_token_body(resp, 200, "successfully logged in", lifetime=lifetime)
    claims = jwt.decode(resp.json["access_token"], SECRET, algorithms=["HS256"],
                        options={"verify_exp": False})
    assert claims["exp"] - claims["iat"] == lifetime


def test_passwords_are_stored_as_bcrypt_hashes(app, db, users):
    register(app, "hash@example.com")
    row = users.db.one("user_by_email", email="hash@example.com")
    assert row["password_hash"].startswith("$2b$04$")
    assert PASSWORD not in row["password_hash"]


@pytest.mark.parametrize("field", ["email", "password"])
def test_a_multipart_part_in_utf7_spelling_a_lone_surrogate_is_a_client_error(app, field):
    """A part may declare its own charset; utf-7 can spell text that is not Unicode."""
    values = {"email": "u7@example.com", "password": PASSWORD}
    parts = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n'.encode()
        + (b"Content-Type: text/plain; charset=utf-7\r\n\r\n+2AA-aaaaaaaaa" if name == field
           else b"\r\n" + value.encode())
        + b"\r\n"
        for name, value in values.items()
    ) + f"--{BOUNDARY}--\r\n".encode()
    resp = raw_post(app, f"{API}/auth/register", parts,
                    f"multipart/form-data; boundary={BOUNDARY}", status="*")
    assert_json(resp, 400, {"status": "fail", "message": "Malformed multipart form body."})


@pytest.mark.parametrize("admin", [..., "yes", 0])
def test_a_token_without_a_boolean_admin_claim_is_invalid(app, users, admin):
    user = users.create("claims@example.com", PASSWORD, admin=False)
    claims = claims_for(user.public_id, admin=admin)
    claims = {k: v for k, v in claims.items() if v is not ...}
    resp = app.get(f"{API}/auth/user", headers=bearer(forge(claims)), status=401)
    assert_token_error(resp, "Invalid token. Please log in again.")


def test_email_uniqueness_folds_non_ascii_letters(app):
    app.post_json(f"{API}/auth/register", {"email": "Ärger@example.com", "password": PASSWORD},
                  status=201)
    resp = app.post_json(f"{API}/auth/register",
                         {"email": "ärger@example.com", "password": PASSWORD}, status=409)
    assert resp.json == {"status": "fail", "message": "ärger@example.com is already registered"}
    login(app, "äRGER@example.com")
