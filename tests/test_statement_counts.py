"""How many SQL statements (round trips) each request costs, endpoint by endpoint: reads and
widget writes stay at one, and the session, user and precondition work rides in the statements
that were there. A change that adds a round trip to an endpoint has to change this table."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.helpers import API, PASSWORD, bearer
from tests.helpers_sql import legacy_session
from widgetsvc.db import Session


@pytest.fixture
def statements(monkeypatch):
    """The named queries run, in order, since the last ``.clear()``."""
    seen: list[str] = []
    original = Session._run

    def counting(self, query, params):
        seen.append(query)
        return original(self, query, params)

    monkeypatch.setattr(Session, "_run", counting)
    return seen


def test_statements_per_request(app, db, users, statements):
    users.create("admin@example.com", PASSWORD, admin=True)
    users.create("member@example.com", PASSWORD, admin=False)
    member_id = None

    def run(method, path, *, token=None, body=None, status, headers=None):
        statements.clear()
        all_headers = {**(bearer(token) if token else {}), **(headers or {})}
        if body is None:
            resp = app.request(path, method=method, headers=all_headers, status=status)
        else:
            resp = getattr(app, f"{method.lower()}_json")(path, body, headers=all_headers,
                                                         status=status)
        return resp, list(statements)

    counts: dict[str, list[str]] = {}
    login, counts["POST /auth/login"] = run(
        "POST", f"{API}/auth/login", body={"email": "admin@example.com", "password": PASSWORD},
        status=200)
    admin = login.json["access_token"]
    _, counts["POST /auth/register"] = run(
        "POST", f"{API}/auth/register", body={"email": "new@example.com", "password": PASSWORD},
        status=201)
    member = app.post_json(f"{API}/auth/login", {"email": "member@example.com",
                                                 "password": PASSWORD}).json
    refreshed, counts["POST /auth/refresh"] = run(
        "POST", f"{API}/auth/refresh", body={"refresh_token": member["refresh_token"]},
        status=200)
    _, counts["POST /auth/refresh (spent: 401)"] = run(
        "POST", f"{API}/auth/refresh", body={"refresh_token": member["refresh_token"]},
        status=401)
    _, legacy = legacy_session(db, "member@example.com")
    _, counts["POST /auth/refresh (legacy token)"] = run(
        "POST", f"{API}/auth/refresh", body={"refresh_token": legacy}, status=200)
    _, counts["POST /auth/refresh (spent legacy: 401)"] = run(
        "POST", f"{API}/auth/refresh", body={"refresh_token": legacy}, status=401)
    member = app.post_json(f"{API}/auth/login", {"email": "member@example.com",
                                                 "password": PASSWORD}).json
    token = member["access_token"]
    user, counts["GET /auth/user"] = run("GET", f"{API}/auth/user", token=token, status=200)
    member_id = user.json["public_id"]
    _, counts["GET /widgets (offset)"] = run("GET", f"{API}/widgets", token=token, status=200)
    _, counts["GET /widgets (sorted, filtered offset)"] = run(
        "GET", f"{API}/widgets?page=2&sort=-deadline&passed=false&name_prefix=w", token=token,
        status=200)
    _, counts["GET /widgets (sorted, filtered cursor)"] = run(
        "GET", f"{API}/widgets?cursor=&sort=deadline&deadline_after=2020-01-01", token=token,
        status=200)
    _, counts["GET /widgets (sorted offset)"] = run(
        "GET", f"{API}/widgets?page=2&sort=-created_at", token=token, status=200)
    _, counts["GET /widgets (sorted cursor)"] = run(
        "GET", f"{API}/widgets?cursor=&sort=deadline", token=token, status=200)
    _, counts["POST /widgets"] = run(
        "POST", f"{API}/widgets", token=admin, status=201,
        body={"name": "w1", "info_url": "https://www.example.com", "deadline": "2099-01-01"})
    got, counts["GET /widgets/{name}"] = run("GET", f"{API}/widgets/w1", token=token, status=200)
    _, counts["GET /widgets/{name} (304)"] = run(
        "GET", f"{API}/widgets/w1", token=token, status=304,
        headers={"If-None-Match": got.headers["ETag"]})
    _, counts["PUT /widgets/{name}"] = run(
        "PUT", f"{API}/widgets/w1", token=admin, status=200,
        body={"info_url": "https://www.example.com/2", "deadline": "2099-01-01"})
    _, counts["PUT /widgets/{name} (If-Match, 412)"] = run(
        "PUT", f"{API}/widgets/w1", token=admin, status=412, headers={"If-Match": '"0" '},
        body={"info_url": "https://www.example.com/3", "deadline": "2099-01-01"})
    _, counts["DELETE /widgets/{name}"] = run("DELETE", f"{API}/widgets/w1", token=admin,
                                              status=204)
    _, counts["GET /users (offset)"] = run("GET", f"{API}/users", token=admin, status=200)
    _, counts["GET /users (cursor)"] = run("GET", f"{API}/users?cursor=", token=admin,
                                           status=200)
    _, counts["PATCH /users/{id} (admin)"] = run(
        "PATCH", f"{API}/users/{member_id}", token=admin, body={"admin": False}, status=200)
    _, counts["PUT /auth/password"] = run(
        "PUT", f"{API}/auth/password", token=token, status=200,
        body={"current_password": PASSWORD, "new_password": "Changed-pass-2"})
    _, counts["POST /auth/logout-all"] = run("POST", f"{API}/auth/logout-all", token=token,
                                             status=200)
    _, counts["PATCH /users/{id} (disable)"] = run(
        "PATCH", f"{API}/users/{member_id}", token=admin, body={"disabled": True}, status=200)
    _, counts["GET /auth/jwks.json"] = run("GET", f"{API}/auth/jwks.json", status=200)
    _, counts["POST /auth/logout"] = run("POST", f"{API}/auth/logout", token=admin, status=200)

    table = "\n".join(f"{name:<40} {len(queries)}  {' + '.join(queries)}"
                      for name, queries in counts.items())
    print("\n" + table)
    assert {name: Counter(queries) for name, queries in counts.items()} == {
        # the lock's check, and its reset with the address remembered (docs/API.md §8.1),
        # around the login's own
        "POST /auth/login": Counter(["login_lock", "user_by_email", "start_session",
                                     "login_succeeded"]),
        "POST /auth/register": Counter(["register_user"]),
        # rotation and reuse are one statement (refresh_session); legacy tokens keep theirs
        "POST /auth/refresh": Counter(["refresh_session"]),
        "POST /auth/refresh (spent: 401)": Counter(["refresh_session"]),
        "POST /auth/refresh (legacy token)": Counter(["rotate_legacy_refresh_token"]),
        "POST /auth/refresh (spent legacy: 401)": Counter(["rotate_legacy_refresh_token",
                                                           "legacy_refresh_token_reused"]),
        "GET /auth/user": Counter(["authenticate"]),
        "GET /widgets (offset)": Counter(["widget_page"]),
        # a filtered page, offset or cursor: one statement too (its page, and an offset
        # page's count)
        "GET /widgets (sorted, filtered offset)": Counter(["widget_list"]),
        "GET /widgets (sorted, filtered cursor)": Counter(["widget_list"]),
        # a sorted page without filters, offset or cursor: its sort's own static statement
        # (sql/queries/widgets.sql)
        "GET /widgets (sorted offset)": Counter(["widgets_by_created_at_desc"]),
        "GET /widgets (sorted cursor)": Counter(["widgets_by_deadline"]),
        "POST /widgets": Counter(["insert_widget"]),
        "GET /widgets/{name}": Counter(["widget_by_name"]),
        "GET /widgets/{name} (304)": Counter(["widget_by_name"]),
        "PUT /widgets/{name}": Counter(["upsert_widget"]),
        "PUT /widgets/{name} (If-Match, 412)": Counter(["update_widget_if_match"]),
        "DELETE /widgets/{name}": Counter(["delete_widget"]),
        "GET /users (offset)": Counter(["authenticate", "users_page"]),
        "GET /users (cursor)": Counter(["authenticate", "users_cursor_page"]),
        "PATCH /users/{id} (admin)": Counter(["authenticate", "update_user_flags"]),
        # the stored hash read together with the lock (docs/API.md §8.1); the revocation is a
        # later statement of the change's transaction, so that it sees the session of a login
        # the change waited for (sql/queries/sessions.sql)
        "PUT /auth/password": Counter(["authenticate", "password_hash_and_lock",
                                       "change_password", "revoke_other_sessions"]),
        "POST /auth/logout-all": Counter(["logout_all"]),
        "PATCH /users/{id} (disable)": Counter(["authenticate", "update_user_flags",
                                                "revoke_user_sessions"]),
        "GET /auth/jwks.json": Counter(),
        "POST /auth/logout": Counter(["revoke_token"]),
    }
