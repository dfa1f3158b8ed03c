"""The order of refusals, 401 → 403 → 400 → 404 → 412 → 409 (docs/API.md, "order of checks"),
endpoint by endpoint: each row is a request that is wrong in two ways at once, and the earlier
refusal must win. The caller check rides in each request's statement (auth/caller.py), and
resource.Resource holds a refusal raised before any statement until the caller is decided; a
revoked administrator's token is the case that would slip through if either forgot."""

from __future__ import annotations

import pytest

from tests.helpers import API, NOT_ADMIN, PASSWORD, REVOKED, bearer, login

W = f"{API}/widgets"
GOOD = {"info_url": "https://www.example.com", "deadline": "2099-01-01"}
BAD = {"info_url": "not a url", "deadline": "yesterday"}
STALE = {"If-Match": '"00000000000000000000000000000000"'}
NEVER = {"If-Match": '"00000000000000000000000000000000"', "If-None-Match": "*"}

# (who, method, path, JSON body or None, extra headers, expected status)
# who: "revoked" (an administrator whose token was logged out), "member", "admin".
CASES = [
    # GET /widgets: 401 before a bad query string's 400
    ("revoked", "GET", f"{W}?page=0", None, {}, 401),
    ("revoked", "GET", f"{W}?cursor=forged", None, {}, 401),
    ("member", "GET", f"{W}?page=0", None, {}, 400),
    # GET /widgets/{name}: 401 before the 404 of a name that cannot exist, or of a missing one
    ("revoked", "GET", f"{W}/a%00b", None, {}, 401),
    ("revoked", "GET", f"{W}/missing", None, {}, 401),
    ("member", "GET", f"{W}/a%00b", None, {}, 404),
    # POST /widgets: 401, 403, then 400, then the taken name's 409
    ("revoked", "POST", W, {"name": "x y", **BAD}, {}, 401),
    ("member", "POST", W, {"name": "x y", **BAD}, {}, 403),
    ("member", "POST", W, {**GOOD, "name": "kept"}, {"Idempotency-Key": ""}, 403),
    ("admin", "POST", W, {"name": "kept", **BAD}, {}, 400),
    ("admin", "POST", W, {**GOOD, "name": "kept"}, {"Idempotency-Key": ""}, 400),
    ("admin", "POST", W, {**GOOD, "name": "kept"}, {}, 409),
    # PUT /widgets/{name}: 401, 403, 400 (even with preconditions that can never hold), 412
    ("revoked", "PUT", f"{W}/missing", BAD, NEVER, 401),
    ("member", "PUT", f"{W}/missing", BAD, NEVER, 403),
    ("admin", "PUT", f"{W}/missing", BAD, NEVER, 400),
    ("admin", "PUT", f"{W}/missing", GOOD, NEVER, 412),
    ("admin", "PUT", f"{W}/kept", GOOD, STALE, 412),
    # DELETE /widgets/{name}: 401, 403, 404 before 412
    ("revoked", "DELETE", f"{W}/a%00b", None, STALE, 401),
    ("member", "DELETE", f"{W}/a%00b", None, STALE, 403),
    ("admin", "DELETE", f"{W}/a%00b", None, STALE, 404),
    ("admin", "DELETE", f"{W}/missing", None, STALE, 404),
    ("admin", "DELETE", f"{W}/kept", None, STALE, 412),
    # GET /users, PATCH /users/{id}: 401, 403, 400, 404, then 409
    ("revoked", "GET", f"{API}/users?per_page=0", None, {}, 401),
    ("member", "GET", f"{API}/users?per_page=0", None, {}, 403),
    ("admin", "GET", f"{API}/users?per_page=0", None, {}, 400),
    ("revoked", "PATCH", f"{API}/users/nobody", {"admin": "maybe"}, {}, 401),
    ("member", "PATCH", f"{API}/users/nobody", {"admin": "maybe"}, {}, 403),
    ("admin", "PATCH", f"{API}/users/nobody", {"admin": "maybe"}, {}, 400),
    ("admin", "PATCH", f"{API}/users/nobody", {"admin": False}, {}, 404),
    ("admin", "PATCH", f"{API}/users/{{self}}", {"admin": False}, {}, 409),
    # the /auth methods that need a token
    ("revoked", "PUT", f"{API}/auth/password", {"current_password": ""}, {}, 401),
    ("member", "PUT", f"{API}/auth/password", {"current_password": ""}, {}, 400),
    ("revoked", "GET", f"{API}/auth/user", None, {}, 401),
    ("revoked", "POST", f"{API}/auth/logout", None, {}, 401),
    ("revoked", "POST", f"{API}/auth/logout-all", None, {}, 401),
]


@pytest.fixture
def callers(app, users):
    """A token per kind of caller, the widget "kept", and the admin's own public id."""
    users.create("admin@example.com", PASSWORD, admin=True)
    users.create("member@example.com", PASSWORD, admin=False)
    users.create("gone@example.com", PASSWORD, admin=True)
    tokens = {who: login(app, f"{who}@example.com") for who in ("admin", "member")}
    tokens["revoked"] = login(app, "gone@example.com")
    app.post(f"{API}/auth/logout", headers=bearer(tokens["revoked"]), status=200)
    app.post_json(W, {**GOOD, "name": "kept"}, headers=bearer(tokens["admin"]), status=201)
    me = app.get(f"{API}/auth/user", headers=bearer(tokens["admin"])).json["public_id"]
    return tokens, me


@pytest.mark.parametrize(("who", "method", "path", "body", "headers", "status"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2].removeprefix(API)}-{c[5]}" for c in CASES])
def test_the_earlier_refusal_wins(app, callers, who, method, path, body, headers, status):
    tokens, me = callers
    all_headers = {**bearer(tokens[who]), **headers}
    path = path.replace("{self}", me)
    if body is None:
        resp = app.request(path, method=method, headers=all_headers, status=status)
    else:
        resp = getattr(app, f"{method.lower()}_json")(path, body, headers=all_headers,
                                                     status=status)
    if status == 401:
        assert resp.json == {"message": REVOKED}
    elif status == 403:
        assert resp.json == {"message": NOT_ADMIN}
    # nothing was written by a refused request: the widget is as it was
    kept = app.get(f"{W}/kept", headers=bearer(tokens["admin"]), status=200).json
    assert kept["info_url"] == GOOD["info_url"]


def test_an_unauthenticated_request_with_a_bad_body_is_401_at_every_write(app):
    for method, path in [("POST", W), ("PUT", f"{W}/x"), ("PATCH", f"{API}/users/x"),
                         ("PUT", f"{API}/auth/password")]:
        resp = getattr(app, f"{method.lower()}_json")(path, {"bad": True}, status=401)
        assert resp.json == {"message": "Unauthorized"}, (method, path)
