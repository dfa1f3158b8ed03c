"""Sessions only from the current password (docs/API.md §8.4, issue 18 (a)): a login whose
password check happened before a password change never creates a session after it, and a
password change revokes every other session, even one a login was creating at that moment.
Both orders of the race are forced with the real database's row locks, not timing."""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import webtest

from tests.helpers import API, PASSWORD, bearer
from tests.helpers_sql import run_sql, wait_for_lock_waiters
from widgetsvc.app import create_app
from widgetsvc.auth import accounts as accounts_module
from widgetsvc.auth import sessions
from widgetsvc.auth.accounts import Account, Accounts

LOGIN = f"{API}/auth/login"
USER = f"{API}/auth/user"
EMAIL = "racer@example.com"
NEW_PASSWORD = "Changed-pass-2"
LOGIN_FAILED = {"status": "fail", "message": "email or password does not match"}
LIFETIME = 3600


@pytest.fixture
def account(users):
    return users.create(EMAIL, PASSWORD, admin=False)


@pytest.fixture
def store(db, config) -> Accounts:
    return Accounts(db, config.bcrypt_rounds)


def new_session() -> sessions.NewSession:
    """A session to insert directly (its refresh token plays no part here)."""
    return sessions.NewSession(uuid.uuid4(), "unused", os.urandom(32))


def start_session(db, user: Account, session: sessions.NewSession) -> bool:
    """The login's inserting statement, as Accounts.start_session runs it."""
    return db.one("start_session", user_id=user.id, password_hash=user.password_hash,
                  session_id=session.id, refresh_hash=session.refresh_hash,
                  lifetime=LIFETIME) is not None


def change_password(store, user_id, session_id, current: str, new: str) -> bool:
    """What PUT /auth/password does with the store: read the stored hash (with the lock, here
    never reached), check the current password against it, then set the new one if that hash
    is still the stored one."""
    stored = store.db.one("password_hash_and_lock", user_id=user_id, address="127.0.0.1",
                          window_seconds=900, address_skip=4, account_skip=99,
                          known_seconds=30 * 86400, rate_quota=0,
                          rate_window=0)["password_hash"]  # no rate limit: no unit taken
    return (store.password_matches(current, stored)
            and store.set_password(user_id, session_id, stored, new))


def session_ids(db) -> set[str]:
    return {str(row["id"]) for row in run_sql(db, "sess_rows", email=EMAIL)}


def test_a_login_whose_check_preceded_a_password_change_gets_the_login_401(
        app, db, store, account, monkeypatch):
    """The change lands between the login's bcrypt check and its session insert: the login
    answers as a wrong password would, and leaves no session."""
    real_check = Accounts.check_login

    def check_then_change(self, email, password):
        user = real_check(self, email, password)
        assert user is not None  # the old password was right when it was checked
        assert change_password(store, user.id, uuid.uuid4(), PASSWORD, NEW_PASSWORD)
        return user

    before = session_ids(db)
    monkeypatch.setattr(accounts_module.Accounts, "check_login", check_then_change)
    resp = app.post_json(LOGIN, {"email": EMAIL, "password": PASSWORD}, status=401)
    assert resp.json == LOGIN_FAILED
    assert session_ids(db) == before  # no session was created
    monkeypatch.undo()
    token = app.post_json(LOGIN, {"email": EMAIL, "password": NEW_PASSWORD}).json
    app.get(USER, headers=bearer(token["access_token"]), status=200)


def test_a_login_waiting_for_an_uncommitted_change_starts_no_session(db, store, account):
    """The change holds the user's row (uncommitted) when the login's insert runs: the insert
    waits for it, then finds the hash it verified gone."""
    checked = store.check_login(EMAIL, PASSWORD)
    assert checked is not None
    before = session_ids(db)
    with ThreadPoolExecutor(1) as pool, db.transaction() as change:
        changed = change.one("change_password", user_id=checked.id,
                             old_hash=checked.password_hash, new_hash="$2b$04$" + "x" * 53)
        assert changed["changed"]
        started = pool.submit(start_session, db, checked, new_session())
        assert wait_for_lock_waiters(db, 1), "the login's insert never waited for the change"
        assert not started.done()
    assert started.result(timeout=30) is False  # the change committed as the block ended
    assert session_ids(db) == before


def test_a_change_revokes_the_session_of_a_login_it_waited_for(db, store, account):
    """The other order: the login's insert holds the row (uncommitted) when the change's
    UPDATE runs. The change waits, and its revocation still reaches that new session."""
    checked = store.check_login(EMAIL, PASSWORD)
    mine = uuid.uuid4()  # the changing caller's own session (none here: all others go)
    session = new_session()
    with ThreadPoolExecutor(1) as pool:
        with db.transaction() as login:
            assert login.one("start_session", user_id=checked.id,
                             password_hash=checked.password_hash, session_id=session.id,
                             refresh_hash=session.refresh_hash, lifetime=LIFETIME)
            change = pool.submit(change_password, store, checked.id, mine, PASSWORD,
                                 NEW_PASSWORD)
            assert wait_for_lock_waiters(db, 1), "the change never waited for the login"
        assert change.result(timeout=30) is True
    (row,) = [r for r in run_sql(db, "sess_rows", email=EMAIL) if r["id"] == session.id]
    assert row["revoked_at"] is not None


def test_racing_logins_and_a_change_leave_no_session_from_the_old_password(
        config, db, clock, store, account):
    """Real concurrency through the app (8 hashing slots, no login lock): 8 logins with the
    old password while it changes. Every login that got a token holds a revoked session."""
    app = webtest.TestApp(create_app(replace(config, hash_slots=8, login_lock_failures=0),
                                     db=db, clock=clock))
    barrier = threading.Barrier(9)
    account_id = store.check_login(EMAIL, PASSWORD).id

    def log_in():
        barrier.wait(timeout=30)
        return app.post_json(LOGIN, {"email": EMAIL, "password": PASSWORD}, expect_errors=True)

    def change():
        barrier.wait(timeout=30)
        return change_password(store, account_id, uuid.uuid4(), PASSWORD, NEW_PASSWORD)

    with ThreadPoolExecutor(9) as pool:
        logins = [pool.submit(log_in) for _ in range(8)]
        changed = pool.submit(change)
        results = [f.result(timeout=60) for f in logins]
    assert changed.result() is True
    assert {r.status_int for r in results} <= {200, 401}
    for resp in results:
        if resp.status_int == 200:
            app.get(USER, headers=bearer(resp.json["access_token"]), status=401)
    assert all(row["revoked_at"] is not None for row in run_sql(db, "sess_rows", email=EMAIL))
