"""There is always an enabled administrator (docs/API.md §8.5, issue 18 (b)): a demotion or
disable that would leave none is a 409, decided in the one statement that changes the row, so
two administrators demoting or disabling each other at the same moment cannot both win."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import API, PASSWORD, bearer, login
from tests.helpers_sql import held, run_sql

USERS = f"{API}/users"
LAST_ADMIN = {"status": "fail", "message": "The last administrator cannot be demoted or disabled."}
FIRST, SECOND = "first-admin@example.com", "second-admin@example.com"
TRIALS = 20


@pytest.fixture
def admins(users) -> dict[str, str]:
    """Two enabled administrators: e-mail -> public id."""
    return {email: str(users.create(email, PASSWORD, admin=True).public_id)
            for email in (FIRST, SECOND)}


def enabled_admins(db) -> list[str]:
    return [row["email"] for row in run_sql(db, "sess_enabled_admins")]


def waiting(db) -> int:
    return run_sql(db, "sess_lock_waiters")[0]["waiting"]


def both_queued_or_done(db, futures, timeout: float = 30.0) -> None:
    """Until both PATCHes wait for a lock or have answered (a generous bound: on the fixed
    code both wait at once; on code that does not lock the administrators one answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if waiting(db) + sum(f.done() for f in futures) >= 2:
            return
        time.sleep(0.01)
    raise AssertionError("the racing PATCHes neither waited nor answered")


def race(app, db, admins: dict[str, str], change: dict[str, bool]) -> list:
    """Each administrator PATCHes the other with ``change``, released together, while the
    first row every demotion locks is held until both are queued on it (or answered), so
    that the two statements really overlap. The two responses, FIRST's then SECOND's."""
    tokens = {email: login(app, email) for email in (FIRST, SECOND)}
    barrier = threading.Barrier(2)

    def patch(caller: str, target: str):
        barrier.wait(timeout=30)
        return app.patch_json(f"{USERS}/{admins[target]}", change,
                              headers=bearer(tokens[caller]), expect_errors=True)

    with ThreadPoolExecutor(2) as pool:
        with held(db, "sess_lock_first_admin") as rows:
            assert len(rows) == 1
            futures = [pool.submit(patch, FIRST, SECOND), pool.submit(patch, SECOND, FIRST)]
            both_queued_or_done(db, futures)
        return [f.result(timeout=60) for f in futures]


@pytest.mark.parametrize("change", [{"admin": False}, {"disabled": True},
                                    {"admin": False, "disabled": True}],
                         ids=["demote", "disable", "both"])
def test_two_admins_changing_each_other_at_once_leave_one(app, db, admins, change):
    outcomes = []
    for _ in range(TRIALS):
        for email in admins:
            run_sql(db, "sess_set_flags", email=email, admin=True, disabled=False)
        first, second = race(app, db, admins, change)
        statuses = (first.status_int, second.status_int)
        assert sorted(statuses) == [200, 409], (first.json, second.json)
        loser = first if first.status_int == 409 else second
        assert loser.json == LAST_ADMIN
        winner_email = FIRST if first.status_int == 200 else SECOND
        # the winner's target changed, and the winner is the one enabled administrator left
        assert enabled_admins(db) == [winner_email]
        outcomes.append(winner_email)
    print(f"\n{change}: winners {outcomes.count(FIRST)} x first, {outcomes.count(SECOND)} x "
          "second")


def test_the_statement_refuses_to_remove_the_last_enabled_admin(db, users, admins):
    """The rule itself, sequentially, on the statement the PATCH runs (through the API an
    administrator is always there to call it, so only a race reaches it)."""
    run_sql(db, "sess_set_flags", email=SECOND, admin=True, disabled=True)  # not enabled
    last = admins[FIRST]
    for change in ({"admin": False, "disabled": None}, {"admin": None, "disabled": True},
                   {"admin": False, "disabled": True}):
        row = db.one("update_user_flags", public_id=last, **change)
        assert row["found"] and row["id"] is None, change
    assert enabled_admins(db) == [FIRST]
    # restating its flags is no removal; nor is demoting a disabled administrator, or
    # changing anyone else; an unknown id is not found
    assert db.one("update_user_flags", public_id=last, admin=True, disabled=False)["admin"]
    row = db.one("update_user_flags", public_id=admins[SECOND], admin=False, disabled=None)
    assert row["id"] is not None and row["admin"] is False
    member = users.create("member@example.com", PASSWORD, admin=False)
    row = db.one("update_user_flags", public_id=member.public_id, admin=None,
                 disabled=True)
    assert row["disabled"] is True
    row = db.one("update_user_flags", public_id=uuid.uuid4(), admin=False, disabled=None)
    assert row["found"] is False and row["id"] is None
    # with a second enabled administrator, the first may go
    run_sql(db, "sess_set_flags", email=SECOND, admin=True, disabled=False)
    assert db.one("update_user_flags", public_id=last, admin=False, disabled=None)["id"]
    assert enabled_admins(db) == [SECOND]


def test_promotions_and_enables_lock_no_administrator(app, db, admins, users):
    """A change that can remove no administrator does not queue behind one: it answers while
    another transaction holds every administrator's row."""
    member = users.create("member@example.com", PASSWORD, admin=False)
    token = login(app, FIRST)
    with held(db, "sess_lock_all_admins"), ThreadPoolExecutor(1) as pool:
        promote = pool.submit(app.patch_json, f"{USERS}/{member.public_id}",
                              {"admin": True, "disabled": False}, headers=bearer(token))
        assert promote.result(timeout=30).json["admin"] is True
