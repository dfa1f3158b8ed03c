"""Contract fuzzing: schemathesis drives every operation of the document the real server serves.

The live document (GET /api/v1/openapi.json from ``bin/serve`` under gunicorn) is loaded; each
operation gets positive and negative cases (examples, coverage and fuzzing phases), sent with a
valid user token, or an admin token where ``x-requires-admin`` says so. Logout logs in again for
every case, so it never revokes the shared tokens. Every response must pass schemathesis's
standard checks. The cases run per operation are written to test-output/schemathesis-summary.txt.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.helpers import API, PASSWORD, bearer
from widgetsvc import timefmt

# Hypothesis's fuzzing phase draws up to this many cases per operation; the examples and
# coverage phases add their own deterministic cases (boundary and invalid values per field).
# 100 rather than 150: the longest single test of the suite (issue 20, full suite under 10
# minutes); the coverage phase's boundary cases do not depend on it.
MAX_EXAMPLES = 100
SUMMARY = Path(__file__).resolve().parent.parent / "test-output" / "schemathesis-summary.txt"
USER = "fuzz-user@example.com"
ADMIN = "fuzz-admin@example.com"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    unsupported_method,
]

schema = schemathesis.pytest.from_fixture("live_schema")


def _future_dates() -> st.SearchStrategy[str]:
    today = timefmt.Clock().now().date()
    formats = st.sampled_from(["%Y-%m-%d", "%m/%d/%Y", "%b %d %Y", "%d %B %Y"])
    days = st.dates(min_value=today, max_value=today.replace(year=today.year + 20))
    return st.builds(lambda day, fmt: day.strftime(fmt), days, formats)


# The schemas' custom formats (each a rule of docs/API.md §3): valid values, so that positive
# cases get past validation to the database (negative cases bring the invalid ones). The
# schemas' patterns and lengths state most of each rule; these supply what a pattern cannot (a
# date in the future, host names that are valid IDNA). A password may exceed 72 UTF-8 bytes:
# the one rule the document can only describe.
_VALID = {
    "widget-name": st.from_regex(r"\A[\w-]{1,100}\Z"),
    "http-url": st.builds(
        "{}://{}{}".format, st.sampled_from(["http", "https", "HTTPS"]),
        st.from_regex(r"\A([a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\.){1,3}[a-z]{2,6}\Z"),
        st.from_regex(r"\A(/[A-Za-z0-9._~%-]{0,12}){0,3}(\?[a-z]=[0-9]{1,3})?\Z")),
    "future-date": _future_dates(),
    "email": st.from_regex(r"\A[A-Za-z0-9._%+-]{1,20}@([a-z0-9]{1,10}\.){1,2}[a-z]{2,6}\Z")
    .filter(lambda e: ".." not in e and not e.startswith(".") and ".@" not in e),
    "password": st.text(min_size=8, max_size=40),
}
for _name, _valid in _VALID.items():
    schemathesis.openapi.format(_name, _valid)


def _login(base_url: str, email: str) -> str:
    request = urllib.request.Request(  # noqa: S310 (127.0.0.1 only)
        f"{base_url}{API}/auth/login", method="POST",
        data=json.dumps({"email": email, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (127.0.0.1 only)
        return json.loads(resp.read())["access_token"]


def _register(base_url: str) -> str:
    """The access token of a new user (its password is PASSWORD)."""
    request = urllib.request.Request(  # noqa: S310 (127.0.0.1 only)
        f"{base_url}{API}/auth/register", method="POST",
        data=json.dumps({"email": f"fuzz-{uuid.uuid4().hex[:12]}@example.com",
                         "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (127.0.0.1 only)
        return json.loads(resp.read())["access_token"]


class Fuzzing:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.user_token = _login(base_url, USER)
        self.admin_token = _login(base_url, ADMIN)
        self.cases: Counter[str] = Counter()
        self.by_mode: Counter[tuple[str, str]] = Counter()
        self.statuses: dict[str, Counter[int]] = {}
        self.started = time.monotonic()

    def token_for(self, case) -> str | None:
        definition = case.operation.definition.raw
        if not definition.get("security"):
            return None
        if definition.get("x-requires-admin"):
            return self.admin_token
        if case.operation.method.lower() == "post" and case.operation.path == f"{API}/auth/logout":
            return _login(self.base_url, USER)  # a fresh token: the shared one stays valid
        if case.operation.path in (f"{API}/auth/logout-all", f"{API}/auth/password"):
            # These end the user's other sessions (or change the password): a user of its own
            return _register(self.base_url)
        return self.user_token


@pytest.fixture
def live_schema(live_server, users):
    users.create(USER, PASSWORD, admin=False)
    users.create(ADMIN, PASSWORD, admin=True)
    # The document the server serves (not from_url, which leaves out the document's own GET).
    with urllib.request.urlopen(f"{live_server.url}{API}/openapi.json", timeout=30) as resp:  # noqa: S310
        document = json.loads(resp.read())
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.update(base_url=live_server.url)
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        database="none",
        # Authorization is ours to set (a real token per case); ignored_auth checks the rest.
        with_security_parameters=False,
        # Unknown query parameters are ignored, as by the tutorial's API and most HTTP APIs.
        allow_extra_parameters=False,
    )
    loaded.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    # A URL or header line too long for the front is refused there (414, 431): a rejection.
    rejection = loaded.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "414", "431"]
    return loaded


@pytest.fixture
def fuzzing(live_server, live_schema):
    state = Fuzzing(live_server.url)
    yield state
    lines = [f"schemathesis {schemathesis.__version__}, max_examples={MAX_EXAMPLES} "
             f"(fuzzing phase; examples and coverage phases add theirs), "
             f"{sum(state.cases.values())} cases in {time.monotonic() - state.started:.0f} s",
             ""]
    for label, count in sorted(state.cases.items()):
        modes = ", ".join(f"{mode} {n}" for (lab, mode), n in sorted(state.by_mode.items())
                          if lab == label)
        statuses = ", ".join(f"{code}×{n}" for code, n in sorted(state.statuses[label].items()))
        lines.append(f"{label:<40} {count:>5} cases ({modes}); statuses {statuses}")
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines))
    documented = {op.ok().label for op in live_schema.get_all_operations()}
    assert set(state.cases) == documented, "an operation was never exercised"


@pytest.mark.e2e
@pytest.mark.slow
@schema.parametrize()
@settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_live_document(case, fuzzing):
    label = case.operation.label
    fuzzing.cases[label] += 1
    fuzzing.by_mode[(label, case.meta.generation.mode.value)] += 1
    token = fuzzing.token_for(case)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    response = case.call(headers=headers, timeout=30)
    fuzzing.statuses.setdefault(label, Counter())[response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        real = [failure for failure in group.exceptions if not _custom_format_only(failure)]
        if real:
            raise FailureGroup(real, str(group)) from None


def _custom_format_only(failure) -> bool:
    """A "schema-violating request accepted" whose value breaks nothing but a custom format.
    Schemathesis cannot check custom formats, so it counts every value as breaking one: the
    value drawn may well be valid (a valid widget name, say). The patterns, lengths and enums
    it can check are still held to it."""
    return (isinstance(failure, AcceptedNegativeData)
            and re.search(r"violates `format` at ", failure.message) is not None
            and re.search(r"violates `format`, |, `format`", failure.message) is None)


# -- what fuzzing found, pinned -----------------------------------------------------------------

@pytest.mark.parametrize("method", ["get", "delete"])
def test_a_name_with_a_nul_byte_is_simply_not_found(app, admin_token, method):
    """Was a 500: PostgreSQL text cannot hold NUL, and the lookup ran the query with it."""
    resp = getattr(app, method)(f"{API}/widgets/a%00b", headers=bearer(admin_token), status=404)
    assert resp.json == {"status": "fail", "message": "a\x00b not found in database."}
    # PUT validates the path name first: a 400, never a query.
    resp = app.put_json(f"{API}/widgets/a%00b", {"info_url": "https://example.com",
                                                 "deadline": "2999-01-01"},
                        headers=bearer(admin_token), status=400)
    assert set(resp.json["errors"]) == {"name"}


# -- schema-valid requests are accepted: several random seeds ----------------------------------

positive_schema = schemathesis.pytest.from_fixture("live_positive_schema")
POSITIVE_EXAMPLES = 40
REJECTED = {400, 413, 415}


def _byte_rule_only(case, response) -> bool:
    """The one refusal the document can only describe: a password over 72 UTF-8 bytes."""
    body = case.body if isinstance(case.body, dict) else {}
    field = "new_password" if "new_password" in body else "password"  # PUT /auth/password
    password = body.get(field)
    return (response.status_code == 400 and isinstance(password, str)
            and len(password.encode("utf-8", "surrogatepass")) > 72
            and response.json() == {"message": "Input payload validation failed",
                                    "errors": {field: "Password must be at most 72 bytes."}})


def _name_too_long_lower_cased(case, response) -> bool:
    """A name of at most 100 characters as sent whose lower-case form is longer (each "İ"
    becomes two code points): the stored name's limit, which no pattern can state."""
    body = case.body if isinstance(case.body, dict) else {}
    name = body.get("name") if case.method.upper() == "POST" else \
        (case.path_parameters or {}).get("name")
    return (response.status_code == 400 and isinstance(name, str) and len(name.lower()) > 100
            and response.json().get("errors", {}).get("name")
            == "Widget name must be at most 100 characters.")


def _wrong_current_password(case, response) -> bool:
    """PUT /auth/password with a well-formed but wrong current password: docs/API.md §8.4
    answers it 400 in the validation shape, though no schema can know the password."""
    return (case.operation.path == f"{API}/auth/password" and response.status_code == 400
            and response.json() == {"message": "Input payload validation failed",
                                    "errors": {"current_password": "Password is incorrect."}})


def _list_rule_only(case, response) -> bool:
    """docs/API.md §8.7's rules that no parameter schema can state: page and cursor together
    (both are optional parameters), a cursor the server never issued (like a token: only the
    server knows its own), a name prefix whose lower-case form is over 100 characters."""
    if response.status_code != 400:
        return False
    errors = response.json().get("errors", {})
    prefix = (case.query or {}).get("name_prefix")
    return errors in ({"cursor": "Use either page or cursor, not both."},
                      {"cursor": "Invalid cursor."}) or (
        list(errors) == ["name_prefix"] and isinstance(prefix, str)
        and len(prefix.lower()) > 100)


@pytest.fixture
def live_positive_schema(live_schema):
    live_schema.config.generation.update(modes=[GenerationMode.POSITIVE],
                                         max_examples=POSITIVE_EXAMPLES)
    live_schema.config.phases.update(phases=["coverage", "fuzzing"])
    return live_schema


@pytest.fixture
def acceptance(live_server, live_positive_schema):
    state = Fuzzing(live_server.url)
    state.byte_rule = 0
    yield state
    print(f"\n{sum(state.cases.values())} positive cases, {state.byte_rule} refused by the "
          f"byte rule")
    documented = {op.ok().label for op in live_positive_schema.get_all_operations()}
    assert set(state.cases) == documented, "an operation was never exercised"


def _accepted(case, acceptance) -> None:
    """What the document allows, the service accepts (2xx, or 401/403/404/409 for whom and
    what exists): nothing is refused as invalid, but for the byte rule."""
    acceptance.cases[case.operation.label] += 1
    token = acceptance.token_for(case)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    response = case.call(headers=headers, timeout=30)
    if response.status_code >= 500:
        pytest.fail(f"schema-valid request answered {response.status_code}: "
                    f"{case.operation.label} {response.text[:500]}\n"
                    f"query={case.query!r} body={case.body!r} path={case.path_parameters!r}")
    if response.status_code in REJECTED:
        if _wrong_current_password(case, response):
            return  # what the caller's password is, like a 401 for who they are
        if _name_too_long_lower_cased(case, response):
            return
        if _list_rule_only(case, response):
            return
        if _byte_rule_only(case, response):
            acceptance.byte_rule += 1
            return
        pytest.fail(f"schema-valid request rejected: {case.operation.label} "
                    f"{response.status_code} {response.text[:500]}\n"
                    f"query={case.query!r} body={case.body!r} path={case.path_parameters!r}")


# Three runs, each operation of each drawing with its own random seed (not derandomized, even
# in CI): the coverage phase's boundary values each time, and new random ones.
_RUN = (pytest.mark.e2e, pytest.mark.slow, positive_schema.parametrize(),
        settings(deadline=None, database=None, derandomize=False,
                 suppress_health_check=list(HealthCheck)))


def _runs(test):
    for mark in reversed(_RUN):
        test = mark(test)
    return test


@_runs
def test_no_schema_valid_request_is_rejected_run1(case, acceptance):
    _accepted(case, acceptance)


@_runs
def test_no_schema_valid_request_is_rejected_run2(case, acceptance):
    _accepted(case, acceptance)


@_runs
def test_no_schema_valid_request_is_rejected_run3(case, acceptance):
    _accepted(case, acceptance)
