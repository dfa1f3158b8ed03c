"""The domain stores on their own, against the real database: what each answers in types, and
which contract error it raises, for the statements whose sentinel columns it decodes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.helpers import PASSWORD, SECRET, login
from widgetsvc import errors
from widgetsvc.auth import sessions, tokens
from widgetsvc.auth.accounts import Accounts, NewUser
from widgetsvc.auth.caller import Caller, Callers
from widgetsvc.auth.keys import cursor_keys_from_secrets, hmac_keyring, refresh_keys_from_secrets
from widgetsvc.auth.session_store import Rotated, SessionStore
from widgetsvc.paging import WidgetListing
from widgetsvc.users.store import UserStore
from widgetsvc.widgets.conditions import Preconditions
from widgetsvc.widgets.store import Fields, Posted, Widget, WidgetStore, Written

FIELDS = Fields("https://www.example.com", datetime(2099, 1, 1, 23, 59, 59, tzinfo=UTC))
NO_CONDITIONS = Preconditions(None, None)


def _caller(token: str, admin: bool = True) -> Caller:
    claims = tokens.decode(token, keys=hmac_keyring(SECRET), leeway=10)
    return Caller(claims, "users", "admins" if admin else None)


@pytest.fixture
def widgets(db) -> WidgetStore:
    return WidgetStore(db, cursor_keys_from_secrets(SECRET))


@pytest.fixture
def admin(app, users) -> str:
    users.create("admin@example.com", PASSWORD, admin=True)
    return login(app, "admin@example.com")


def test_the_widget_store_answers_in_types(widgets, admin):
    assert widgets.get(_caller(admin, admin=False), "w1") is None
    posted = widgets.create(_caller(admin), "w1", FIELDS)
    assert isinstance(posted, Posted) and posted.name == "w1" and not posted.replayed
    widget = widgets.get(_caller(admin, admin=False), "w1")
    assert isinstance(widget, Widget) and widget.etag == posted.etag
    assert widget.owner_email == "admin@example.com"
    updated = widgets.put(_caller(admin), "w1", FIELDS, NO_CONDITIONS)
    assert isinstance(updated, Written) and updated.created is False
    assert updated.etag != posted.etag
    assert widgets.put(_caller(admin), "w2", FIELDS, NO_CONDITIONS).created is True
    page = widgets.page(_caller(admin, admin=False),
                        WidgetListing(per_page=1, number=2, cursor=None, position=None,
                                      sort=None))
    assert page.total == 2 and [w.name for w in page.items] == ["w2"]
    past_the_end = widgets.page(_caller(admin, admin=False),
                                WidgetListing(per_page=5, number=9, cursor=None, position=None,
                                              sort=None))
    assert past_the_end.total == 2 and past_the_end.items == []  # the padding row is no item


def test_the_widget_store_raises_the_contract_errors(widgets, admin):
    widgets.create(_caller(admin), "w1", FIELDS)
    with pytest.raises(errors.APIError) as taken:
        widgets.create(_caller(admin), "w1", FIELDS)
    assert taken.value.status_code == 409
    stale = Preconditions((False, [uuid.UUID(int=0)]), None)  # If-Match: a tag never issued
    for call in (lambda: widgets.put(_caller(admin), "w1", FIELDS, stale),
                 lambda: widgets.delete(_caller(admin), "w1", stale)):
        with pytest.raises(errors.APIError) as failed:
            call()
        assert failed.value.status_code == 412
    for name in ("missing", "a\x00b"):
        with pytest.raises(errors.APIError) as missing:
            widgets.delete(_caller(admin), name, stale)
        assert missing.value.status_code == 404
    widgets.delete(_caller(admin), "w1", NO_CONDITIONS)
    assert widgets.get(_caller(admin, admin=False), "w1") is None


def test_a_refused_caller_is_decided_once_and_gets_no_row(app, db, widgets, users, admin):
    users.create("member@example.com", PASSWORD, admin=False)
    member = _caller(login(app, "member@example.com"))
    with pytest.raises(errors.APIError) as refused:
        widgets.create(member, "w1", FIELDS)
    assert refused.value.status_code == 403 and member.decided
    assert widgets.get(_caller(admin, admin=False), "w1") is None  # the write changed nothing
    Callers(db).check(member)  # decided already: no second statement, no second answer


def test_the_user_store_refuses_with_404_and_409(db, admin, users):
    store = UserStore(db, cursor_keys_from_secrets(SECRET))
    me = uuid.UUID(str(tokens.decode(admin, keys=hmac_keyring(SECRET)).public_id))
    for target, status in [("not-a-uuid", 404), (str(uuid.uuid4()), 404), (str(me), 409)]:
        with pytest.raises(errors.APIError) as refused:
            store.set_flags(me, target, admin=False, disabled=None)
        assert refused.value.status_code == status, target
    member = users.create("member@example.com", PASSWORD, admin=False)
    changed = store.set_flags(me, str(member.public_id), admin=True, disabled=None)
    assert changed.admin is True and changed.disabled is False


def test_the_session_store_says_why_a_refresh_is_refused(app, db, users):
    users.create("member@example.com", PASSWORD, admin=False)
    body = app.post_json("/api/v1/auth/login", {"email": "member@example.com",
                                                "password": PASSWORD}).json
    store = SessionStore(db)
    presented = sessions.parse(refresh_keys_from_secrets(SECRET), body["refresh_token"])
    rotated = store.rotate(presented, sessions.new_secret(), 3600)
    assert isinstance(rotated, Rotated) and rotated.generation == 1 and rotated.admin is False
    assert store.rotate(presented, sessions.new_secret(), 3600) == "reused"
    unknown = sessions.Presented(uuid.uuid4(), 0, b"\x00" * 32)
    assert store.rotate(unknown, sessions.new_secret(), 3600) == "invalid"


def test_accounts_create_answers_the_new_user_or_none_when_the_email_is_taken(db):
    accounts = Accounts(db, 4)
    made = accounts.create("New.Member@example.com", PASSWORD, admin=True)
    assert isinstance(made, NewUser)
    assert (made.email, made.admin) == ("New.Member@example.com", True)
    assert isinstance(made.id, int) and isinstance(made.public_id, uuid.UUID)
    assert isinstance(made.registered_on, datetime) and made.registered_on.tzinfo is not None
    assert accounts.create("new.member@EXAMPLE.com", PASSWORD, admin=False) is None
    assert accounts.check_login("new.member@example.com", PASSWORD).public_id == made.public_id
