"""A login for an unknown e-mail costs as much as one with a wrong password (docs/API.md §4), at the
production bcrypt cost, so response times do not tell which e-mails are registered."""

from __future__ import annotations

import statistics
import time

import pytest
import webtest

from tests.helpers import API, PASSWORD, SECRET
from widgetsvc.app import create_app
from widgetsvc.auth.accounts import Accounts
from widgetsvc.config import Config

pytestmark = pytest.mark.slow

PRODUCTION_ROUNDS = 12
TRIES = 30
TOLERANCE = 0.20


def test_unknown_email_and_wrong_password_take_the_same_time(database_url, db):
    config = Config.from_env({
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "WIDGETSVC_ENV": "test",
        "BCRYPT_ROUNDS": str(PRODUCTION_ROUNDS),
        "LOGIN_LOCK_FAILURES": "0",  # 30 failures per e-mail here; the lock has its own tests
        "AUTH_RATE_LIMIT": "0",  # 60 logins from one address; the rate limit has its own
    })
    app = webtest.TestApp(create_app(config, db=db))
    Accounts(db, PRODUCTION_ROUNDS).create("known@example.com", PASSWORD, admin=False)

    def attempt(email: str, password: str) -> float:
        started = time.perf_counter()
        resp = app.post_json(f"{API}/auth/login", {"email": email, "password": password},
                             status=401)
        elapsed = time.perf_counter() - started
        assert resp.json == {"status": "fail", "message": "email or password does not match"}
        return elapsed

    # The right password works at this cost (so the stored hash really is a cost-12 hash).
    app.post_json(f"{API}/auth/login", {"email": "known@example.com", "password": PASSWORD})

    unknown: list[float] = []
    wrong: list[float] = []
    for i in range(TRIES):  # interleaved, alternating which goes first, to cancel drift
        pair = [
            (unknown, "nobody@example.com", PASSWORD),
            (wrong, "known@example.com", "Wrong-pass-1"),
        ]
        for times, email, password in (pair if i % 2 == 0 else pair[::-1]):
            times.append(attempt(email, password))

    median_unknown = statistics.median(unknown)
    median_wrong = statistics.median(wrong)
    # A cost-12 bcrypt check takes far longer than the rest of a login: if either kind of
    # try skipped it, its median would be a small fraction of the other's.
    assert min(median_unknown, median_wrong) > 0.02, (median_unknown, median_wrong)
    ratio = abs(median_unknown - median_wrong) / max(median_unknown, median_wrong)
    assert ratio <= TOLERANCE, (
        f"unknown e-mail median {median_unknown * 1000:.1f} ms, "
        f"wrong password median {median_wrong * 1000:.1f} ms ({ratio:.0%} apart)"
    )
