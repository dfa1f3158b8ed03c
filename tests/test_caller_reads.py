"""Statements that check their caller themselves (widgetsvc/auth/caller.py): the middleware's and
resource.Resource's side of the bargain with resources made for the purpose, and the widget
API's reads and writes, each one statement per request, against the real database."""

from __future__ import annotations

import falcon
import pytest
import webtest

from tests.helpers import API, INVALID, NOT_ADMIN, PASSWORD, REVOKED, SECRET, bearer, login
from tests.helpers_sql import run_sql
from widgetsvc import errors
from widgetsvc.app import create_app
from widgetsvc.auth.caller import Callers, checked_rows
from widgetsvc.auth.keys import hmac_keyring
from widgetsvc.auth.middleware import NONE, TOKEN, AuthMiddleware, check_declarations
from widgetsvc.db import Database
from widgetsvc.resource import Resource, Shared
from widgetsvc.validation import Validator

BODY = {"name": "w1", "info_url": "https://www.example.com", "deadline": "2099-01-01"}


class AnswersWithoutReading(Resource):
    """A GET that promises a caller-checking statement but answers without one (a bug):
    resource.Resource checks the caller after the fact, and a refusal leaves without what
    the responder set."""

    auth = {"GET": TOKEN}
    caller_in_statement = frozenset({"GET"})

    def on_get(self, req, resp):
        resp.set_header("X-Secret-Total", "42")
        resp.media = {"answered": True}


class Reads(Resource):
    auth = {"GET": TOKEN}
    caller_in_statement = frozenset({"GET"})

    def __init__(self, shared: Shared, db: Database):
        super().__init__(shared)
        self.db = db
        self.rows = None

    def on_get(self, req, resp):
        self.rows = checked_rows(self.db, req.context.caller, "widget_page", limit=10,
                                 offset=0)
        resp.media = {"total": self.rows[0]["total_items"]}


@pytest.fixture
def probe(config, db, clock):
    """The service's middleware and error rendering around the two resources above."""
    callers = Callers(db)
    app = falcon.App(middleware=[AuthMiddleware(
        callers, keys=hmac_keyring(SECRET), leeway=config.token_leeway, user_realm="users",
        admin_realm="admins")])
    errors.install(app)
    shared = Shared(config, Validator(clock), clock, callers)
    reads = Reads(shared, db)
    app.add_route("/unread", AnswersWithoutReading(shared))
    app.add_route("/read", reads)
    return webtest.TestApp(app), reads


@pytest.fixture
def token(config, db, users, clock):
    users.create("reader@example.com", PASSWORD, admin=False)
    return login(webtest.TestApp(create_app(config, db=db, clock=clock)), "reader@example.com")


def test_a_responder_that_does_not_read_still_has_its_caller_checked(probe, db, token):
    app, _ = probe
    ok = app.get("/unread", headers=bearer(token), status=200)
    assert ok.json == {"answered": True} and ok.headers["X-Secret-Total"] == "42"

    run_sql(db, "attacks_delete_user", email="reader@example.com")
    refused = app.get("/unread", headers=bearer(token), status=401)
    assert refused.json == {"message": INVALID}
    # the check came first: nothing the responder would have set leaves with the 401
    assert "X-Secret-Total" not in refused.headers
    assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="users"')


def test_a_caller_checking_read_refuses_a_revoked_token_before_the_responder_sees_rows(
        probe, config, db, clock, token, users):
    app, reads = probe
    owner = users.create("owner@example.com", PASSWORD, admin=True)
    run_sql(db, "blocks_insert_ids", ids=[1, 2], owner_id=owner.id)
    assert app.get("/read", headers=bearer(token), status=200).json == {"total": 2}
    assert reads.rows[0]["revoked"] is False

    service = webtest.TestApp(create_app(config, db=db, clock=clock))
    service.post("/api/v1/auth/logout", headers=bearer(token), status=200)
    reads.rows = None
    assert app.get("/read", headers=bearer(token), status=401).json == {"message": REVOKED}
    assert reads.rows is None  # the 401 was raised inside the read, before any row came back


def test_only_a_token_or_admin_method_may_check_its_caller_in_its_statement():
    class PublicStatement:
        auth = {"GET": NONE}
        caller_in_statement = frozenset({"GET"})

        def on_get(self, req, resp): ...

    with pytest.raises(TypeError, match="only a TOKEN or ADMIN method's statement"):
        check_declarations(PublicStatement())
    check_declarations(Reads)


# -- the widget API: one statement per request ----------------------------------------------

class CountingDatabase(Database):
    """The real database, noting the name of every statement a request runs."""

    def __init__(self, url: str):
        super().__init__(url, min_size=1, max_size=2)
        self.ran: list[str] = []

    def one(self, query, /, **params):
        self.ran.append(query)
        return super().one(query, **params)

    def all(self, query, /, **params):
        self.ran.append(query)
        return super().all(query, **params)

    def execute(self, query, /, **params):
        self.ran.append(query)
        return super().execute(query, **params)


@pytest.fixture
def counted(config, database_url, clock):
    db = CountingDatabase(database_url)
    db.pool.open(wait=True, timeout=10)
    yield webtest.TestApp(create_app(config, db=db, clock=clock)), db
    db.close()


def _statements(db: CountingDatabase, request) -> list[str]:
    db.ran.clear()
    request()
    return list(db.ran)


def test_every_widget_request_and_a_logout_is_one_statement(counted, admin_token):
    app, db = counted
    auth = bearer(admin_token)
    url = f"{API}/widgets"
    assert _statements(db, lambda: app.post_json(url, BODY, headers=auth, status=201)) \
        == ["insert_widget"]
    assert _statements(db, lambda: app.post_json(url, BODY, headers=auth, status=409)) \
        == ["insert_widget"]
    assert _statements(db, lambda: app.get(f"{url}/w1", headers=auth, status=200)) \
        == ["widget_by_name"]
    assert _statements(db, lambda: app.get(url, headers=auth, status=200)) == ["widget_page"]
    assert _statements(db, lambda: app.put_json(f"{url}/w1", BODY, headers=auth, status=200)) \
        == ["upsert_widget"]
    assert _statements(db, lambda: app.put_json(f"{url}/w2", BODY, headers=auth, status=201)) \
        == ["upsert_widget"]
    assert _statements(db, lambda: app.delete(f"{url}/w2", headers=auth, status=204)) \
        == ["delete_widget"]
    assert _statements(db, lambda: app.delete(f"{url}/w2", headers=auth, status=404)) \
        == ["delete_widget"]
    # answering without the statement (bad input), the caller is checked on its own first
    assert _statements(db, lambda: app.post_json(url, {}, headers=auth, status=400)) \
        == ["authenticate"]
    logout = f"{API}/auth/logout"
    assert _statements(db, lambda: app.post(logout, headers=auth, status=200)) == ["revoke_token"]
    # the second logout of that token is refused by the same one statement
    assert _statements(db, lambda: app.post(logout, headers=auth, status=401)) == ["revoke_token"]


def _widget_count(db) -> int:
    return run_sql(db, "attacks_count_widgets")[0]["n"]


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_non_admin_write_is_403_and_writes_nothing(app, db, admin_token, user_token, method):
    app.post_json(f"{API}/widgets", {**BODY, "name": "keep"}, headers=bearer(admin_token),
                  status=201)
    before = app.get(f"{API}/widgets/keep", headers=bearer(admin_token)).json
    auth = bearer(user_token)
    resp = _write_keep(app, method, auth, 403, post_name="new")
    assert resp.json == {"message": NOT_ADMIN}
    assert 'realm="admin_users@mydomain.com", error="insufficient_scope"' \
        in resp.headers["WWW-Authenticate"]
    assert app.get(f"{API}/widgets/keep", headers=bearer(admin_token)).json == before
    assert _widget_count(db) == 1


def _write_keep(app, method: str, auth: dict, status: int, post_name: str):
    """A write that would touch the widget "keep" (POST creates ``post_name``)."""
    if method == "post":
        return app.post_json(f"{API}/widgets", {**BODY, "name": post_name}, headers=auth,
                             status=status)
    if method == "put":
        return app.put_json(f"{API}/widgets/keep",
                            {**BODY, "info_url": "https://x.example.com"},
                            headers=auth, status=status)
    return app.delete(f"{API}/widgets/keep", headers=auth, status=status)


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_revoked_admin_write_is_401_and_writes_nothing(app, db, users, method):
    users.create("a2@example.com", PASSWORD, admin=True)
    keeper = login(app, "a2@example.com")
    app.post_json(f"{API}/widgets", {**BODY, "name": "keep"}, headers=bearer(keeper),
                  status=201)
    token = login(app, "a2@example.com")
    app.post(f"{API}/auth/logout", headers=bearer(token), status=200)
    auth = bearer(token)
    # POST with a taken name: the 401 comes before the 409
    resp = _write_keep(app, method, auth, 401, post_name="keep")
    assert resp.json == {"message": REVOKED}
    kept = app.get(f"{API}/widgets/keep", headers=bearer(keeper)).json
    assert kept["info_url"] == BODY["info_url"]
    assert _widget_count(db) == 1


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_deleted_admin_write_is_401_invalid(app, db, users, method):
    users.create("gone@example.com", PASSWORD, admin=True)
    token = login(app, "gone@example.com")
    run_sql(db, "attacks_delete_user", email="gone@example.com")
    auth = bearer(token)
    if method == "post":
        resp = app.post_json(f"{API}/widgets", BODY, headers=auth, status=401)
    elif method == "put":
        resp = app.put_json(f"{API}/widgets/w1", BODY, headers=auth, status=401)
    else:
        resp = app.delete(f"{API}/widgets/w1", headers=auth, status=401)
    assert resp.json == {"message": INVALID}
    assert _widget_count(db) == 0


@pytest.mark.parametrize("bad", [
    {"json": {"name": "x y"}},                                   # 400 validation
    {"body": b"{not json", "content_type": "application/json"},   # 400 malformed
    {"body": b"x", "content_type": "text/plain"},                 # 415
])
def test_a_non_admin_gets_403_before_any_input_error(app, user_token, bad):
    auth = bearer(user_token)
    if "json" in bad:
        resp = app.post_json(f"{API}/widgets", bad["json"], headers=auth, status=403)
    else:
        resp = app.post(f"{API}/widgets", bad["body"], headers={
            **auth, "Content-Type": bad["content_type"]}, status=403)
    assert resp.json == {"message": NOT_ADMIN}


def test_a_non_admin_delete_of_an_impossible_name_is_403_not_404(app, user_token):
    resp = app.delete(f"{API}/widgets/a%00b", headers=bearer(user_token), status=403)
    assert resp.json == {"message": NOT_ADMIN}
