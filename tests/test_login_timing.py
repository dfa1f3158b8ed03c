"""A login for an unknown e-mail costs as much as one with a wrong password (docs/API.md §4), at the
production bcrypt cost, so response times do not tell which e-mails are registered.

What makes them equal is asserted exactly: each kind of try runs one bcrypt check against a
cost-12 hash (the unknown e-mail's is the dummy hash). Their times are then compared only
against a generous bound (neither median under half the other: a try that skipped the hash
would take a few per cent of the other's), so a loaded machine cannot fail the test; the
measured medians are printed (``bin/test tests/test_login_timing.py -s``): about 1 % apart on
a quiet machine.
"""

from __future__ import annotations

import statistics
import time

import bcrypt
import pytest
import webtest

from tests.helpers import API, PASSWORD, SECRET
from widgetsvc.app import create_app
from widgetsvc.auth.accounts import Accounts
from widgetsvc.config import Config

pytestmark = pytest.mark.slow

PRODUCTION_ROUNDS = 12
TRIES = 10
RATIO_BOUND = 0.5  # a regression bound; see the docstring


def test_unknown_email_and_wrong_password_take_the_same_time(database_url, db, monkeypatch):
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

    checked: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)

    def attempt(email: str, password: str) -> float:
        del checked[:]
        started = time.perf_counter()
        resp = app.post_json(f"{API}/auth/login", {"email": email, "password": password},
                             status=401)
        elapsed = time.perf_counter() - started
        assert resp.json == {"status": "fail", "message": "email or password does not match"}
        assert [h[:7] for h in checked] == [f"$2b${PRODUCTION_ROUNDS}$".encode()], (email, checked)
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
    ratio = min(median_unknown, median_wrong) / max(median_unknown, median_wrong)
    print(f"\nlogin medians at cost {PRODUCTION_ROUNDS}: unknown e-mail "
          f"{median_unknown * 1000:.1f} ms, wrong password {median_wrong * 1000:.1f} ms "
          f"({1 - ratio:.0%} apart)")
    assert ratio >= RATIO_BOUND, (median_unknown, median_wrong)
