"""User administration (docs/API.md §8.5): GET /users paged exactly like widgets, PATCH
/users/{public_id} (admin, disabled), the order of checks, and what disabling does to
sessions and logins."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from tests.helpers import API, PASSWORD, bearer, login
from tests.helpers_sql import run_sql
from tests.test_sessions_api import BLACKLISTED, INVALID_REFRESH, LOGIN_FAILED, send
from widgetsvc import timefmt

USERS = f"{API}/users"
USER = f"{API}/auth/user"
WIDGETS = f"{API}/widgets"
REFRESH = f"{API}/auth/refresh"
LOGIN = f"{API}/auth/login"
ADMIN_REALM = "admin_users@mydomain.com"
VALIDATION = "Input payload validation failed"
MISSING = "Missing required parameter in the post body"
PAGE_KEYS = ["links", "has_prev", "has_next", "page", "total_pages", "items_per_page",
             "total_items", "items"]
ITEM_KEYS = ["email", "public_id", "admin", "disabled", "registered_on",
             "registered_on_iso8601"]
SELF = {"status": "fail", "message": "Administrators cannot demote or disable themselves."}
KINDS = ["json", "form", "multipart"]


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def admin(users):
    return users.create("admin@example.com", PASSWORD, admin=True)


@pytest.fixture
def token(app, admin) -> str:
    return login(app, "admin@example.com")


@pytest.fixture
def member(users):
    return users.create("member@example.com", PASSWORD, admin=False)


def patch(app, kind, token, public_id, fields, status):
    if kind != "json":
        fields = {k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()}
    return send(app, kind, "PATCH", f"{USERS}/{public_id}", fields, status=status,
                headers=bearer(token))


def fill(db, count: int) -> None:
    """``count`` users registered in one statement (same instant: ordered by id)."""
    run_sql(db, "attacks_fill_users", count=count)


# -- GET /users --------------------------------------------------------------------------------

def test_the_users_page_is_paged_exactly_like_widgets(app, db, token):
    fill(db, 21)  # with the admin: 22 users, like the contract's widget example
    resp = app.get(f"{USERS}?page=2&per_page=5", headers=bearer(token), status=200)
    body = resp.json
    assert list(body) == PAGE_KEYS
    assert list(body["links"].items()) == [
        ("self", "/api/v1/users?page=2&per_page=5"),
        ("first", "/api/v1/users?page=1&per_page=5"),
        ("prev", "/api/v1/users?page=1&per_page=5"),
        ("next", "/api/v1/users?page=3&per_page=5"),
        ("last", "/api/v1/users?page=5&per_page=5"),
    ]
    assert (body["has_prev"], body["has_next"], body["page"], body["total_pages"],
            body["items_per_page"], body["total_items"]) == (True, True, 2, 5, 5, 22)
    # registration order: the admin first, then bulk1, bulk2, ...
    assert [item["email"] for item in body["items"]] == [f"bulk{i}@example.com"
                                                        for i in range(5, 10)]
    assert resp.headers["Total-Count"] == "22"
    assert resp.headers["Link"] == (
        '</api/v1/users?page=2&per_page=5>; rel="self", '
        '</api/v1/users?page=1&per_page=5>; rel="first", '
        '</api/v1/users?page=1&per_page=5>; rel="prev", '
        '</api/v1/users?page=3&per_page=5>; rel="next", '
        '</api/v1/users?page=5&per_page=5>; rel="last"')
    assert resp.headers["Content-Type"] == "application/json"


def test_a_user_item(app, admin, token):
    before = datetime.now(UTC).replace(microsecond=0)
    resp = app.get(USERS, headers=bearer(token), status=200)
    (item,) = resp.json["items"]
    assert list(item) == ITEM_KEYS
    assert item["email"] == "admin@example.com"
    assert item["public_id"] == str(admin.public_id)
    assert item["admin"] is True and item["disabled"] is False
    assert item["registered_on"] == timefmt.format_date(admin.registered_on)
    assert re.fullmatch(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d (AM|PM) UTC", item["registered_on"])
    assert item["registered_on_iso8601"] == admin.registered_on.strftime("%Y-%m-%dT%H:%M:%S")
    parsed = datetime.fromisoformat(item["registered_on_iso8601"]).replace(tzinfo=UTC)
    assert abs((parsed - before).total_seconds()) < 60
    assert resp.json["links"] == {"self": "/api/v1/users?page=1&per_page=10",
                                  "first": "/api/v1/users?page=1&per_page=10",
                                  "last": "/api/v1/users?page=1&per_page=10"}


@pytest.mark.parametrize(("page", "rels"), [
    (1, ["self", "first", "next", "last"]), (5, ["self", "first", "prev", "last"]),
    (9, ["self", "first", "prev", "last"])])
def test_users_prev_next_and_past_the_end(app, db, token, page, rels):
    fill(db, 21)
    body = app.get(f"{USERS}?page={page}&per_page=5", headers=bearer(token)).json
    assert list(body["links"]) == rels
    assert len(body["items"]) == {1: 5, 5: 2, 9: 0}[page]
    if page == 9:
        assert body["links"]["prev"] == "/api/v1/users?page=8&per_page=5"
        assert body["has_next"] is False


@pytest.mark.parametrize(("query", "errors"), [
    ("page=0", {"page": "Invalid page: 0. page must be a positive integer"}),
    ("page=x", {"page": "x is not a valid integer"}),
    ("per_page=7", {"per_page": "The value '7' is not a valid choice for 'per_page'."}),
])
def test_bad_users_pagination_query(app, token, query, errors):
    resp = app.get(f"{USERS}?{query}", headers=bearer(token), status=400)
    assert resp.json == {"message": VALIDATION, "errors": errors}


def test_users_needs_an_admin(app, member):
    resp = app.get(f"{USERS}?page=0", status=401)  # 401 before the 400
    assert resp.json == {"message": "Unauthorized"}
    assert resp.headers["WWW-Authenticate"] == f'Bearer realm="{ADMIN_REALM}"'
    resp = app.get(f"{USERS}?page=0", headers=bearer(login(app, "member@example.com")),
                   status=403)  # 403 before the 400
    assert resp.json == {"message": "You are not an administrator"}


# -- PATCH /users/{public_id} ------------------------------------------------------------------

def item_of(app, token, email) -> dict:
    items = app.get(f"{USERS}?per_page=100", headers=bearer(token)).json["items"]
    return next(i for i in items if i["email"] == email)


@pytest.mark.parametrize(("fields", "admin_now", "disabled_now"), [
    ({"admin": True}, True, False),
    ({"disabled": True}, False, True),
    ({"admin": True, "disabled": True}, True, True),
    ({"admin": False, "disabled": False}, False, False),
])
def test_patch_sets_the_flags(app, token, member, kind, fields, admin_now, disabled_now):
    resp = patch(app, kind, token, member.public_id, fields, status=200)
    assert list(resp.json) == ITEM_KEYS
    assert resp.json == {**item_of(app, token, "member@example.com"),
                         "admin": admin_now, "disabled": disabled_now}
    assert resp.json["public_id"] == str(member.public_id)


@pytest.mark.parametrize(("yes", "no"), [("true", "false"), ("TRUE", "FALSE"),
                                         ("True", "False"), ("tRuE", "fAlSe")])
def test_forms_take_true_and_false_in_any_case(app, token, member, yes, no):
    url = f"{USERS}/{member.public_id}"
    for kind in ("form", "multipart"):
        resp = send(app, kind, "PATCH", url, {"admin": yes, "disabled": no}, status=200,
                    headers=bearer(token))
        assert (resp.json["admin"], resp.json["disabled"]) == (True, False)
        resp = send(app, kind, "PATCH", url, {"admin": no}, status=200, headers=bearer(token))
        assert (resp.json["admin"], resp.json["disabled"]) == (False, False)


@pytest.mark.parametrize(("fields", "errors"), [
    ({"admin": "yes"}, {"admin": "admin must be a boolean"}),
    ({"disabled": "1"}, {"disabled": "disabled must be a boolean"}),
    ({"admin": "", "disabled": "t"}, {"admin": "admin must be a boolean",
                                      "disabled": "disabled must be a boolean"}),
    ({}, {"admin": MISSING, "disabled": MISSING}),
    ({"email": "x@example.com"}, {"admin": MISSING, "disabled": MISSING}),
])
def test_patch_input_rules(app, token, member, kind, fields, errors):
    resp = send(app, kind, "PATCH", f"{USERS}/{member.public_id}", fields, status=400,
                headers=bearer(token))
    assert resp.json == {"message": VALIDATION, "errors": errors}


@pytest.mark.parametrize("value", ["true", 1, 0, None, [True], {"a": 1}])
def test_json_flags_must_be_booleans(app, token, member, value):
    resp = app.patch_json(f"{USERS}/{member.public_id}", {"disabled": value},
                          headers=bearer(token), status=400)
    assert resp.json == {"message": VALIDATION,
                         "errors": {"disabled": "disabled must be a boolean"}}


# Fixed ids: every parallel worker must collect the same test names.
@pytest.mark.parametrize("public_id", ["6293f6c2-e449-4836-9461-7377aa37253a", "not-a-uuid",
                                       "12345", "90C6E9E2-7DB5-40A9-9A3C-5F2105A0BA13"])
def test_an_unknown_user_is_404(app, token, public_id):
    resp = app.patch_json(f"{USERS}/{public_id}", {"admin": True}, headers=bearer(token),
                          status=404)
    assert resp.json == {"status": "fail", "message": f"{public_id} not found in database."}


def test_a_public_id_in_capitals_finds_the_user(app, token, member):
    resp = app.patch_json(f"{USERS}/{str(member.public_id).upper()}", {"admin": True},
                          headers=bearer(token), status=200)
    assert resp.json["public_id"] == str(member.public_id)


@pytest.mark.parametrize("fields", [{"admin": False}, {"disabled": True},
                                    {"admin": True, "disabled": True},
                                    {"admin": False, "disabled": False}])
def test_an_administrator_cannot_demote_or_disable_themselves(app, db, admin, token, kind,
                                                             fields):
    resp = patch(app, kind, token, admin.public_id, fields, status=409)
    assert resp.json == SELF
    flags = run_sql(db, "sess_user_flags", email="admin@example.com")[0]
    assert (flags["admin"], flags["disabled"]) == (True, False)


def test_an_administrator_may_restate_their_own_flags(app, admin, token):
    resp = app.patch_json(f"{USERS}/{admin.public_id}", {"admin": True, "disabled": False},
                          headers=bearer(token), status=200)
    assert resp.json["admin"] is True and resp.json["disabled"] is False


def test_the_order_of_checks(app, users, admin, token, member):
    """401 -> 403 -> 400 -> 404 -> 409."""
    bad = {"admin": "maybe"}
    unknown = f"{USERS}/{uuid.uuid4()}"
    assert app.patch_json(unknown, bad, status=401).json == {"message": "Unauthorized"}
    member_token = login(app, "member@example.com")
    assert app.patch_json(unknown, bad, headers=bearer(member_token),
                          status=403).json == {"message": "You are not an administrator"}
    assert app.patch_json(unknown, bad, headers=bearer(token), status=400).json["errors"] == {
        "admin": "admin must be a boolean"}
    assert app.patch_json(unknown, {"admin": False}, headers=bearer(token),
                          status=404).json["status"] == "fail"
    assert app.patch_json(f"{USERS}/{admin.public_id}", {"admin": False},
                          headers=bearer(token), status=409).json == SELF


def test_disabling_cuts_every_session_and_refuses_logins(app, token, member):
    sessions = [app.post_json(LOGIN, {"email": "member@example.com", "password": PASSWORD})
                .json for _ in range(2)]
    app.patch_json(f"{USERS}/{member.public_id}", {"disabled": True},
                   headers=bearer(token), status=200)
    for session in sessions:
        assert app.get(USER, headers=bearer(session["access_token"]),
                       status=401).json == BLACKLISTED
        assert app.post_json(REFRESH, {"refresh_token": session["refresh_token"]},
                             status=401).json == INVALID_REFRESH
    # a disabled user's login: the same 401 as a wrong password, right password or not
    for password in (PASSWORD, "Wrong-pass-1"):
        assert app.post_json(LOGIN, {"email": "member@example.com", "password": password},
                             status=401).json == LOGIN_FAILED
    # re-enabling lets them log in again, but revives no old session
    app.patch_json(f"{USERS}/{member.public_id}", {"disabled": False},
                   headers=bearer(token), status=200)
    fresh = app.post_json(LOGIN, {"email": "member@example.com", "password": PASSWORD},
                          status=200).json
    app.get(USER, headers=bearer(fresh["access_token"]), status=200)
    for session in sessions:
        app.get(USER, headers=bearer(session["access_token"]), status=401)


def test_a_disabled_administrator_loses_admin_access_at_once(app, users, admin, token):
    users.create("second@example.com", PASSWORD, admin=True)
    second = login(app, "second@example.com")
    app.get(USERS, headers=bearer(second), status=200)
    target = item_of(app, token, "second@example.com")["public_id"]
    app.patch_json(f"{USERS}/{target}", {"disabled": True}, headers=bearer(token), status=200)
    assert app.get(USERS, headers=bearer(second), status=401).json == BLACKLISTED


def test_promoting_and_demoting_takes_effect_on_the_next_request(app, token, member):
    member_token = login(app, "member@example.com")
    app.get(USERS, headers=bearer(member_token), status=403)
    app.patch_json(f"{USERS}/{member.public_id}", {"admin": True}, headers=bearer(token))
    app.get(USERS, headers=bearer(member_token), status=200)
    app.patch_json(f"{USERS}/{member.public_id}", {"admin": False}, headers=bearer(token))
    app.get(USERS, headers=bearer(member_token), status=403)
    app.get(USER, headers=bearer(member_token), status=200)  # demoting revokes nothing
