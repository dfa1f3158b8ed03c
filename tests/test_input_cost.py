"""Cost bounded by size (issue 18, docs/API.md §8.1): pathological inputs of the body limit's
size in every string field of every endpoint get their 4xx at once, in the contract's shape.

- In-process (the app factory, real PostgreSQL): long runs of non-ASCII letters, dots,
  dashes, ``@``, ``%``-escapes and nested brackets in every field, as JSON and as forms, in
  query strings and path names, and as whole bodies. Measured in CPU time of the requesting
  thread (WebTest runs the app in it), which a busy machine does not inflate the way it
  inflates wall time.
- Through the real front (nginx, gunicorn): 4 parallel non-admin PUTs with the issue's 65 KB
  ``info_url`` (and registers with such an ``email``) while a health probe runs.
- A Hypothesis search, ``target()``-ed on the time a validation takes, for slow inputs.
- The linear forms accept exactly what the backtracking patterns they replace accepted.
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import re
import statistics
import subprocess
import threading
import time
import uuid
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, example, given, settings, target
from hypothesis import strategies as st

from tests.helpers import API, PASSWORD, LiveServer
from tests.live_http import call
from widgetsvc import hygiene, linear_re, requestlog, timefmt, validation
from widgetsvc.auth import sessions, tokens
from widgetsvc.ops.localdb import REPO_ROOT

BODY_LIMIT = 64 * 1024
CPU_LIMIT = 0.5  # seconds of CPU for one request: the contract's "well under a second"
WALL_LIMIT = 5.0  # generous: only a hang (the old 30 s) fails it on a busy machine

URL = "https://www.example.com/widget"
FUTURE = "2099-05-13"
EMAIL = "someone@example.com"
VALIDATION_FAILED = "Input payload validation failed"

# Units repeated to fill a value: the shapes that made the old patterns and parsers slow.
UNITS = {"é": "é", "dots": ".", "dashes": "-", "at": "@", "pct-e9": "%e9", "pct": "%",
         "brackets": "[", "braces": "{", "a.": "a.", "é.": "é.", "digits": "1",
         "ideographic-spaces": "\u3000"}
# A prefix that gets a field's pattern past its first characters, where the slow part began.
PREFIXES = {"info_url": "http://a.", "email": "a@a."}


@contextlib.contextmanager
def no_collection():
    """The cost measured is the code's own: the cyclic garbage collector, which a long test
    process (the fast tier runs 2,500 tests in one) may start at any allocation and which
    thread_time counts, is held off while the measured call runs."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def fill(prefix: str, unit: str, room: int, size=lambda s: len(s.encode())) -> str:
    """``prefix`` + ``unit`` repeated + ``!``, as long as fits ``room`` (measured by ``size``)."""
    count = (room - size(prefix + "!")) // size(unit)
    return prefix + unit * max(count, 1) + "!"


def assert_contract_4xx(resp, what: str) -> None:
    """A 4xx with one of the contract's JSON bodies (docs/API.md §3, §4, §8)."""
    assert 400 <= resp.status_int < 500, (what, resp.status, resp.text[:300])
    body = resp.json
    assert isinstance(body, dict) and isinstance(body.get("message"), str), (what, body)
    assert set(body) <= {"status", "message", "errors"}, (what, list(body))
    if "errors" in body:
        assert body["message"] == VALIDATION_FAILED, (what, body["message"][:200])
        assert body["errors"] and all(isinstance(v, str) for v in body["errors"].values())
    if "status" in body:
        assert body["status"] == "fail", (what, body)


def timed_request(app, what: str, path: str, method: str, body: bytes | None = None,
                  content_type: str | None = None, token: str | None = None):
    """One in-process request: its answer must be a contract 4xx within the limits."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    with no_collection():
        cpu, wall = time.thread_time(), time.perf_counter()
        resp = app.request(path, method=method, body=body or b"", headers=headers,
                           expect_errors=True)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    assert cpu < CPU_LIMIT and wall < WALL_LIMIT, (what, f"{cpu:.3f} s CPU, {wall:.3f} s")
    assert_contract_4xx(resp, what)
    return resp


# (endpoint, method, path, token role, the valid body the field is put into)
BODY_FIELDS = [
    ("register", "POST", f"{API}/auth/register", None, {"email": EMAIL, "password": PASSWORD},
     ("email", "password")),
    ("login", "POST", f"{API}/auth/login", None, {"email": EMAIL, "password": PASSWORD},
     ("email", "password")),
    ("refresh", "POST", f"{API}/auth/refresh", None, {"refresh_token": "x" * 43},
     ("refresh_token",)),
    ("password", "PUT", f"{API}/auth/password", "user",
     {"current_password": PASSWORD, "new_password": PASSWORD},
     ("current_password", "new_password")),
    ("create", "POST", f"{API}/widgets", "admin",
     {"name": "w", "info_url": URL, "deadline": FUTURE}, ("name", "info_url", "deadline")),
    ("update", "PUT", f"{API}/widgets/w", "admin", {"info_url": URL, "deadline": FUTURE},
     ("info_url", "deadline")),
    ("update-non-admin", "PUT", f"{API}/widgets/w", "user",
     {"info_url": URL, "deadline": FUTURE}, ("info_url", "deadline")),
    ("patch-user", "PATCH", f"{API}/users/{uuid.uuid4()}", "admin", {"admin": True},
     ("admin", "disabled")),
]
BODY_CASES = [pytest.param(endpoint, method, path, role, valid, field, kind,
                           id=f"{endpoint}-{field}-{kind}")
              for endpoint, method, path, role, valid, fields in BODY_FIELDS
              for field in fields for kind in ("json", "form")]


def _encoded(kind: str, data: dict) -> tuple[bytes, str]:
    if kind == "json":
        return json.dumps(data, ensure_ascii=False).encode(), "application/json"
    pairs = "&".join(f"{quote_plus(k)}={quote_plus(str(v))}" for k, v in data.items())
    return pairs.encode(), "application/x-www-form-urlencoded"


@pytest.fixture
def tokens_by_role(user_token, admin_token) -> dict:
    return {None: None, "user": user_token, "admin": admin_token}


@pytest.mark.parametrize(("endpoint", "method", "path", "role", "valid", "field", "kind"),
                         BODY_CASES)
def test_a_pathological_body_field_gets_its_4xx_at_once(app, tokens_by_role, endpoint, method,
                                                        path, role, valid, field, kind):
    overhead = len(_encoded(kind, {**valid, field: ""})[0])
    size = (lambda s: len(s.encode())) if kind == "json" else (lambda s: len(quote_plus(s)))
    for shape, unit in UNITS.items():
        value = fill(PREFIXES.get(field, ""), unit, BODY_LIMIT - overhead, size)
        body, content_type = _encoded(kind, {**valid, field: value})
        assert len(body) <= BODY_LIMIT, (shape, len(body))  # the field is read, not a 413
        resp = timed_request(app, f"{endpoint} {field}={shape} ({kind})", path, method, body,
                             content_type, tokens_by_role[role])
        assert resp.status_int != 413


@pytest.mark.parametrize(("path", "role", "field"), [
    *((f"{API}/widgets", "user", field) for field in (
        "page", "per_page", "cursor", "sort", "deadline_before", "deadline_after", "passed",
        "owner", "name_prefix")),
    *((f"{API}/users", "admin", field) for field in ("page", "per_page", "cursor"))])
def test_a_pathological_query_string_gets_its_400_at_once(app, tokens_by_role, path, role,
                                                          field):
    for shape, unit in UNITS.items():
        query = quote(fill("", unit, BODY_LIMIT), safe="")
        resp = timed_request(app, f"{path}?{field}={shape}", f"{path}?{field}={query}", "GET",
                             token=tokens_by_role[role])
        assert resp.status_int == 400 and field in resp.json["errors"], resp.json


@pytest.mark.parametrize(("method", "base", "role", "valid"), [
    ("GET", f"{API}/widgets/", "user", None),
    ("PUT", f"{API}/widgets/", "admin", {"info_url": URL, "deadline": FUTURE}),
    ("DELETE", f"{API}/widgets/", "admin", None),
    ("PATCH", f"{API}/users/", "admin", {"admin": True}),
])
def test_a_pathological_path_name_gets_its_4xx_at_once(app, tokens_by_role, method, base,
                                                       role, valid):
    body = json.dumps(valid).encode() if valid else None
    for shape, unit in UNITS.items():
        name = quote(fill("", unit, BODY_LIMIT), safe="")
        timed_request(app, f"{method} {base}{{{shape}}}", base + name, method, body,
                      "application/json" if valid else None, tokens_by_role[role])


@pytest.mark.parametrize(("path", "role"), [(f"{API}/auth/register", None),
                                            (f"{API}/widgets", "admin")])
@pytest.mark.parametrize("content_type", ["application/json",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=b"])
def test_a_pathological_whole_body_gets_its_4xx_at_once(app, tokens_by_role, path, role,
                                                        content_type):
    nested = {"json-nesting": '{"a":' * 10000, "json-string": None}
    for shape, unit in [*UNITS.items(), *nested.items()]:
        if unit is None:  # one JSON string of 64 KiB of é: a valid body, no valid field
            text = json.dumps({"email": "é" * 32000}, ensure_ascii=False)
        else:
            text = fill("info_url=" if "form" in content_type else "", unit, BODY_LIMIT)
        timed_request(app, f"{path} body={shape} ({content_type})", path, "POST",
                      text.encode()[:BODY_LIMIT], content_type, tokens_by_role[role])


@pytest.mark.parametrize(("header", "status"), [
    ("Authorization", 401), ("Host", 400), ("X-Request-ID", 404), ("If-None-Match", 404)])
def test_a_pathological_header_gets_its_answer_at_once(app, user_token, header, status):
    """Headers are text too (ASCII shapes: a header is Latin-1): the token, Host, request id
    and ETag checks are linear string code. GET of a widget that does not exist: 404."""
    for shape, unit in UNITS.items():
        if not unit.isascii():
            continue
        value = fill("Bearer " if header == "Authorization" else "", unit, BODY_LIMIT)
        headers = {"Authorization": f"Bearer {user_token}", header: value}
        with no_collection():
            cpu, wall = time.thread_time(), time.perf_counter()
            resp = app.get(f"{API}/widgets/w", headers=headers, expect_errors=True)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        assert cpu < CPU_LIMIT and wall < WALL_LIMIT, (header, shape, cpu, wall)
        assert resp.status_int == status, (header, shape, resp.status, resp.text[:200])
        assert_contract_4xx(resp, f"{header}: {shape}")
        assert len(resp.headers["X-Request-ID"]) == 32  # never the 64 KiB one echoed


def test_a_string_over_its_max_length_is_never_matched_against_its_pattern(monkeypatch):
    """Length first: the pattern (and with it any engine) never sees a value its field's
    maxLength already refuses; the answer is the rule's message as before."""
    seen: list[int] = []
    search = linear_re.Pattern.search
    monkeypatch.setattr(linear_re.Pattern, "search",
                        lambda self, text: seen.append(len(text)) or search(self, text))
    checker = validation.Validator(timefmt.Clock())
    long_url = "http://a." + "é" * 300
    with pytest.raises(Exception) as raised:
        checker.validate("widget_create", {"name": "w", "info_url": long_url,
                                           "deadline": FUTURE})
    assert raised.value.body["errors"] == {"info_url": f"{long_url} is not a valid URL"}
    assert max(seen, default=0) <= validation.MAX_URL_CHARS
    seen.clear()
    checker.validate("widget_create", {"name": "w", "info_url": URL, "deadline": FUTURE})
    assert len(URL) in seen  # a value within its length is matched (by RE2)


def test_junk_query_parameters_are_neither_remembered_nor_sorted_with_the_page():
    """The remembered pagination results are keyed by ``page`` and ``per_page`` alone: 64 KiB
    of other parameters, different on every request, leave one small entry."""
    checker = validation.Validator(timefmt.Clock())
    for i in range(20):
        junk = {f"junk{i}-{j}": "é" * 3000 for j in range(20)}
        values = checker.validate("pagination", {"page": "2", **junk}, "query string")
        assert values == {"page": 2, "per_page": 10}
    assert list(checker._passed) == [("pagination", (("page", "2"),))]


# -- through the real front --------------------------------------------------------------------

ISSUE_INFO_URL = "http://a." + "é" * 32600 + "!"  # issue 18: 65 KB, 30 s per request before
ISSUE_EMAIL = "a@a." + "é" * 32600 + "!"
HEALTH_P99_LIMIT = 1.0  # seconds: the issue's 100 ms is not robust on a shared 2-core machine
ROUNDS = 5  # requests each of the 4 parallel clients sends, one after the other


def _raw_json(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()  # UTF-8, as the issue sent it


def _post_raw(server, method: str, path: str, body: bytes, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=90)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, resp.getheader("Content-Type", ""), raw, time.monotonic() - started
    finally:
        conn.close()


@pytest.mark.e2e
@pytest.mark.slow
def test_parallel_pathological_requests_through_the_front_neither_hang_nor_block_health(
        database_url, db, user_token, tmp_path):
    """Issue 18's attack: 4 parallel clients, each sending 65 KB PUTs (a non-admin's token)
    or registers; each answer a 4xx within 1 s, health probes throughout within the limit
    (measured p99 about 30 ms on the shared machine; before the fix each request took 30 s
    and ended in a worker timeout)."""
    server = LiveServer(database_url, tmp_path / "serve.log").start()
    try:
        deadline = time.monotonic() + 60
        while call(server, "GET", f"{API}/health", timeout=5).status != 200:
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.1)
        cases = {
            "PUT info_url (non-admin)": ("PUT", f"{API}/widgets/x", user_token,
                                         {"info_url": ISSUE_INFO_URL, "deadline": FUTURE}),
            "POST register email": ("POST", f"{API}/auth/register", None,
                                    {"email": ISSUE_EMAIL, "password": PASSWORD}),
        }
        figures = {}
        for label, (method, path, token, data) in cases.items():
            body = _raw_json(data)
            assert 65_000 <= len(body) <= BODY_LIMIT
            answers: list = []

            def send(method=method, path=path, body=body, token=token, answers=answers):
                for _ in range(ROUNDS):  # the load lasts while health is probed
                    answers.append(_post_raw(server, method, path, body, token))
                    if answers[-1][3] >= 1.0:
                        return  # failed already: do not wait 30 s more per request

            threads = [threading.Thread(target=send) for _ in range(4)]
            probes: list[float] = []
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads) or len(probes) < 20:
                reply = call(server, "GET", f"{API}/health", timeout=60)
                assert reply.status == 200, reply.text
                probes.append(reply.seconds)
                time.sleep(0.02)
            for thread in threads:
                thread.join()
            probes.sort()
            figures[label] = {
                "answers": sorted({status for status, *_ in answers}),
                "slowest_answer_s": round(max(a[3] for a in answers), 3),
                "health_p50_ms": round(statistics.median(probes) * 1000, 1),
                "health_p99_ms": round(probes[min(len(probes) - 1,
                                                  int(len(probes) * 0.99))] * 1000, 1),
                "probes": len(probes),
            }
            print(f"\n[input-cost] {label}: {json.dumps(figures[label])}")
            for status, content_type, raw, seconds in answers:
                assert 400 <= status < 500, (label, status, raw[:300])
                assert content_type.startswith("application/json"), (label, content_type)
                body = json.loads(raw)
                assert isinstance(body.get("message"), str), (label, body)
                assert seconds < 1.0, (label, figures[label])
            assert figures[label]["health_p99_ms"] < HEALTH_P99_LIMIT * 1000, figures[label]
        # the non-admin is refused (403) after a validation that no longer takes 30 s
        assert figures["PUT info_url (non-admin)"]["answers"] == [403], figures
        assert figures["POST register email"]["answers"] == [400], figures
    finally:
        server.stop()


# -- a targeted search for slow inputs ---------------------------------------------------------

_CHECKER = validation.Validator(timefmt.Clock())
_FIELDS = {
    "name": lambda v: ("widget_create", {"name": v, "info_url": URL, "deadline": FUTURE}),
    "info_url": lambda v: ("widget_create", {"name": "w", "info_url": v, "deadline": FUTURE}),
    "deadline": lambda v: ("widget_create", {"name": "w", "info_url": URL, "deadline": v}),
    "email": lambda v: ("credentials", {"email": v, "password": PASSWORD}),
    "password": lambda v: ("credentials", {"email": EMAIL, "password": v}),
    "page": lambda v: ("pagination", {"page": v}),
    "per_page": lambda v: ("pagination", {"per_page": v}),
    "refresh_token": lambda v: ("refresh", {"refresh_token": v}),
    "new_password": lambda v: ("password_change", {"current_password": PASSWORD,
                                                   "new_password": v}),
}
_PIECES = ["é", ".", "-", "@", "%", "[", "{", "a", "1", "0", " ", "\u3000", "é.", "a.", "a-",
           "http://", "https://a.", "a@", "a@a.", "localhost", ":", "/", "#", "xn--", "\n"]


@st.composite
def _runs(draw) -> str:
    """Concatenated runs: a piece repeated up to 3000 times, a few runs long; the shapes
    that make backtracking slow are runs, not noise."""
    runs = draw(st.lists(st.tuples(st.sampled_from(_PIECES), st.integers(1, 3000)),
                         min_size=1, max_size=4))
    return "".join(piece * count for piece, count in runs) + draw(st.sampled_from(["", "!"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(_FIELDS)), text=_runs())
@example(field="info_url", text="http://a." + "é" * 3000 + "!")
@example(field="email", text="a@a." + "é" * 3000 + "!")
def test_hypothesis_finds_no_slow_input_for_any_validator(field, text):
    """Hypothesis steers towards the slowest inputs it can find (``target``); none may cost
    more than 0.1 s of CPU (about 20 KB at most: the old patterns took seconds on the
    examples, the linear ones well under a millisecond)."""
    schema, data = _FIELDS[field](text)
    with no_collection():
        started = time.thread_time()
        try:
            _CHECKER.validate(schema, data)
        except Exception as exc:  # the contract's 400 (an HTTPError): anything else is a bug
            assert getattr(exc, "body", {}).get("message") == VALIDATION_FAILED, exc
        elapsed = time.thread_time() - started
    target(elapsed, label=f"cpu seconds ({field})")
    assert elapsed < 0.1, (field, len(text), elapsed)


# -- the linear forms accept what the backtracking ones did -----------------------------------

def _schema_patterns() -> list[str]:
    return sorted({p for schema in validation.load_schemas().values()
                   for p in validation._patterns(schema)})


_TRICKY = st.lists(st.sampled_from(
    list("aZ0-._@/:?#!%[]{}\"\\ \n\t\x00\x7fé。Éß\u3000\u2028\x85\ud800") +
    ["localhost", "LocalHost", "http://", "https://", "xn--", "a.", "é.", "a@"]),
    max_size=40).map("".join)


@pytest.mark.slow  # 300 examples per pattern: about 40 s on 2 cores (not in bin/test --fast)
@pytest.mark.parametrize("pattern", _schema_patterns())
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_each_schema_pattern_accepts_under_re2_exactly_what_re_accepted(pattern, data):
    text = data.draw(st.one_of(
        st.from_regex(pattern, fullmatch=False).filter(lambda s: len(s) < 300),
        _TRICKY,
        st.from_regex(pattern).filter(lambda s: len(s) < 300).flatmap(
            lambda s: st.sampled_from([s + "\n", s + "\n\n", s + "!", "\n" + s, s[:-1],
                                       s.replace(".", "。"), s.upper(), s + "localhost"])),
    ))
    assert linear_re.compile(pattern).search(text) == bool(re.search(pattern, text)), text


@pytest.mark.parametrize("host", ["http://a.localhost", "http://a.LOCALHOST.", "http://a.lOcAlHoSt/x",
                                  "http://a.localhost?q", "http://a.localhost#f",
                                  "http://a.localhost\n", "http://a.localhostt",
                                  "http://a.localhos", "http://a.xlocalhost",
                                  "http://" + "a." * 9 + "com",
                                  "http://a." + "z" * 63, "http://a." + "z" * 64,
                                  "http://a.localhost./", "http://localhost.com"])
def test_the_localhost_lookahead_is_rewritten_exactly(host):
    pattern = validation.load_schemas()["InfoUrl"]["pattern"]
    assert linear_re.compile(pattern).search(host) == bool(re.search(pattern, host))
    email = validation.load_schemas()["Email"]["pattern"]
    address = "me@" + host.split("://", 1)[1]
    assert linear_re.compile(email).search(address) == bool(re.search(email, address))


@pytest.mark.parametrize("pattern", [r"(?<!-)a", r"(?=a)", r"\w+", r"\d", r"\bx", r"a$b",
                                     r"(?i)a", r"(a)\1", "é", r"[]a]", r"\u00e", r"\u00zz",
                                     r"[\ud800-\uffff]"])
def test_a_pattern_re2_would_read_differently_is_refused(pattern):
    with pytest.raises(linear_re.UnsupportedPattern):
        linear_re.compile(pattern)


def test_python_whitespace_is_spelled_out_exactly():
    spaces = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    assert spaces == linear_re.PYTHON_WHITESPACE
    assert all(re.match(r"\s", c) for c in spaces)


_SOME_TEXT = st.lists(st.sampled_from(
    list("aZz09-_.:[]@!é\n\t \x00Ⅻ٣ß") + ["localhost", "::1"]), max_size=20).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=_SOME_TEXT)
def test_string_code_accepts_what_the_replaced_patterns_accepted(text):
    old_name = re.match(r"^[\w-]+$", text) and not re.search(r"[\x00-\x1f\x7f]", text)
    assert validation._is_widget_name(text) == bool(old_name)
    assert validation._is_integer(text) == bool(re.fullmatch(r"^[+-]?[0-9]+$", text))
    assert validation._is_label(text) == bool(
        re.match(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", text))
    host = re.match(r"^(?P<host>\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(?P<port>[0-9]{1,5}))?$",
                    text)
    assert hygiene.split_host(text) == (host and (host["host"], host["port"]))
    for token in (text * 3, f"{text}.{text}.{text}"):
        assert sessions._is_base64url(token) == bool(re.fullmatch(r"[A-Za-z0-9_-]*", token))
        assert tokens._jwt_shape(token) == bool(
            re.match(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$", token)
            and not token.endswith("\n"))
    assert requestlog.safe_request_id(text) == bool(
        re.match(r"^[A-Za-z0-9._:-]{1,128}$", text) and not text.endswith("\n"))


@pytest.mark.e2e
def test_no_module_that_reads_client_input_imports_re():
    """The request path holds no backtracking regular expression (docs/API.md §8.1): RE2
    through widgetsvc/linear_re.py, or string code. Startup-only code (configuration, SQL
    files, the OpenAPI document) and the tools in widgetsvc/ops, which never serve a request,
    may use ``re``."""
    startup_only = {"db.py", "ops", "docs"}
    offenders = []
    for path in sorted((REPO_ROOT / "widgetsvc").rglob("*.py")):
        relative = path.relative_to(REPO_ROOT / "widgetsvc")
        if relative.parts[0] in startup_only:
            continue
        source = path.read_text()
        if re.search(r"^\s*(import re\b|from re import)", source, re.M):
            offenders.append(str(relative))
    assert offenders == []


# -- bin/bench-inputs --------------------------------------------------------------------------

@pytest.mark.e2e
def test_bench_inputs_help_and_unknown_option():
    script = str(REPO_ROOT / "bin" / "bench-inputs")
    helped = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert helped.returncode == 0 and "usage: bin/bench-inputs" in helped.stdout
    wrong = subprocess.run([script, "--no-such-option"], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
    assert wrong.returncode == 2 and "usage:" in wrong.stderr


@pytest.mark.e2e
def test_bench_inputs_prints_the_worst_time_per_field():
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "bench-inputs"), "--size", "4096", "--repeat", "1",
         "--fields", "info_url,email,json body"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line[:17].strip(): line[17:].split() for line in result.stdout.splitlines()[2:]}
    assert set(rows) == {"info_url", "email", "json body"}, result.stdout
    for worst_cpu_ms, wall_ms, _per_kib, *shape in rows.values():
        assert float(worst_cpu_ms) >= 0 and float(wall_ms) >= 0 and shape


@pytest.mark.parametrize("text", ["é", "e", "xé", "\u00e9\u00e9", "\u2000"])
def test_a_unicode_escape_means_the_same_to_re2(text):
    pattern = r"^[a-z\u00e0-\u00ff\u2000]+$"
    assert linear_re.compile(pattern).search(text) == bool(re.search(pattern, text))
