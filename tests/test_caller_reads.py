"""Reads that check their caller themselves (widgetsvc/auth/caller.py): the middleware's side of
the bargain, with a resource made for the purpose, against the real database."""

from __future__ import annotations

import falcon
import pytest
import webtest

from tests.conftest import PASSWORD, SECRET, bearer, login
from tests.helpers_sql import run_sql
from widgetsvc import errors
from widgetsvc.app import create_app
from widgetsvc.auth.middleware import ADMIN, TOKEN, AuthMiddleware, check_declarations

REVOKED = {"message": "Token blacklisted. Please log in again."}
INVALID = {"message": "Invalid token. Please log in again."}


class AnswersWithoutReading:
    """A GET that promises a caller-checking read but answers without one: it asks for the
    check on its own first, as the widget GETs do before a 400 or an impossible name's 404."""

    auth = {"GET": TOKEN}
    reads_check_caller = frozenset({"GET"})

    def on_get(self, req, resp):
        req.context.reads.check_unread()
        resp.set_header("X-Secret-Total", "42")
        resp.media = {"answered": True}


class Reads:
    auth = {"GET": TOKEN}
    reads_check_caller = frozenset({"GET"})

    def __init__(self):
        self.rows = None

    def on_get(self, req, resp):
        self.rows = req.context.reads.all("widget_page", limit=10, offset=0)
        resp.media = {"total": self.rows[0]["total_items"]}


@pytest.fixture
def probe(config, db):
    """The service's middleware and error rendering around the two resources above."""
    app = falcon.App(middleware=[AuthMiddleware(
        db, secret=SECRET, leeway=config.token_leeway, user_realm="users",
        admin_realm="admins")])
    errors.install(app)
    reads = Reads()
    app.add_route("/unread", AnswersWithoutReading())
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
    assert refused.json == INVALID
    # the check came first: nothing the responder would have set leaves with the 401
    assert "X-Secret-Total" not in refused.headers
    assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="users"')


def test_a_caller_checking_read_refuses_a_revoked_token_before_the_responder_sees_rows(
        probe, config, db, clock, token, users):
    app, reads = probe
    owner = users.create("owner@example.com", PASSWORD, admin=True)
    run_sql(db, "blocks_insert_ids", ids=[1, 2], owner_id=owner["id"])
    assert app.get("/read", headers=bearer(token), status=200).json == {"total": 2}
    assert reads.rows[0]["revoked"] is False

    service = webtest.TestApp(create_app(config, db=db, clock=clock))
    service.post("/api/v1/auth/logout", headers=bearer(token), status=200)
    reads.rows = None
    assert app.get("/read", headers=bearer(token), status=401).json == REVOKED
    assert reads.rows is None  # the 401 was raised inside the read, before any row came back


def test_only_a_token_level_method_may_check_its_caller_in_its_reads():
    class AdminRead:
        auth = {"GET": ADMIN}
        reads_check_caller = frozenset({"GET"})

        def on_get(self, req, resp): ...

    with pytest.raises(TypeError, match="only a TOKEN method's reads can check the caller"):
        check_declarations(AdminRead())
    check_declarations(Reads())
