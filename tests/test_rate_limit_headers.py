"""The per-address rate limit of login, register and password changes and its IETF httpapi
headers (docs/API.md §8.8): counted by the application in PostgreSQL, so every answer says what
is left; nginx's limit_req stays in front as a flood ceiling whose 429s say r=0."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import Counter

import pytest
import webtest

from tests.helpers import API, PASSWORD, bearer
from tests.helpers_sql import run_sql
from tests.live_http import call
from tests.test_front_door import front_server  # noqa: F401 (the fixture)
from tests.test_revocation import run_purge
from tests.test_statement_counts import statements  # noqa: F401 (the fixture)
from widgetsvc.app import create_app

LOGIN, REGISTER, PASSWORD_CHANGE = (f"{API}/auth/login", f"{API}/auth/register",
                                    f"{API}/auth/password")
UNKNOWN = {"email": "nobody@example.com", "password": "Wrong-pass-1"}  # a well-formed 401


def unknown(i: int) -> dict[str, str]:
    """A well-formed login that is a 401, its e-mail its own (no failed-login lock met)."""
    return {**UNKNOWN, "email": f"nobody-{i}@example.com"}
REMAINING = re.compile(r'^"auth";r=(\d+);t=(\d+)$')
TOO_MANY = "Too many requests. Try again in {n} seconds."


def remaining(headers) -> tuple[int, int]:
    """``RateLimit``'s r and t."""
    match = REMAINING.match(headers["RateLimit"])
    assert match, headers["RateLimit"]
    return int(match[1]), int(match[2])


@pytest.fixture
def limited(config, db, clock):
    """An application counting ``quota`` limited requests per minute per address."""

    def make(quota: int, address: str = "192.0.2.1") -> webtest.TestApp:
        app = create_app(dataclasses.replace(config, auth_rate_limit=quota), db=db, clock=clock)
        return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": address})

    return make


def test_r_counts_down_per_request_and_the_429_comes_at_zero(limited):
    app = limited(4)
    seen = []
    for _ in range(4):
        reply = app.post_json(LOGIN, UNKNOWN, status=401)
        assert reply.headers["RateLimit-Policy"] == '"auth";q=4;w=60'
        seen.append(remaining(reply.headers))
    assert [r for r, _ in seen] == [3, 2, 1, 0], seen
    assert all(1 <= t <= 60 for _, t in seen), seen
    assert [t for _, t in seen] == sorted((t for _, t in seen), reverse=True), seen
    for _ in range(2):  # spent: the 429, before the password is looked at
        reply = app.post_json(LOGIN, {"email": "x@example.com", "password": PASSWORD},
                              headers={"Origin": "https://client.example"}, status=429)
        r, t = remaining(reply.headers)
        assert r == 0 and 1 <= t <= seen[-1][1]
        assert reply.headers["Retry-After"] == str(t)
        assert reply.json == {"status": "fail", "message": TOO_MANY.format(n=t)}
        assert reply.headers["RateLimit-Policy"] == '"auth";q=4;w=60'
    assert "RateLimit" in reply.headers["Access-Control-Expose-Headers"]


def test_login_register_and_password_changes_share_one_window_per_address(limited, users):
    users.create("member@example.com", PASSWORD, admin=False)
    app = limited(6)
    token = app.post_json(LOGIN, {"email": "member@example.com", "password": PASSWORD},
                          status=200).json["access_token"]
    answers = [
        app.post_json(REGISTER, {"email": "new@example.com", "password": PASSWORD}, status=201),
        app.post_json(REGISTER, {"email": "bad"}, status=400),  # refused before any statement
        app.put_json(PASSWORD_CHANGE, {"current_password": "x", "new_password": PASSWORD},
                     headers=bearer(token), status=400),
        app.put_json(PASSWORD_CHANGE, {}, status=401),  # no token: refused by the token check
        app.post(LOGIN, "{not json", content_type="application/json", status=400),
    ]
    assert [remaining(a.headers)[0] for a in answers] == [4, 3, 2, 1, 0]
    # spent: whatever the request, the window's 429 (no user registered, no password changed)
    for request in (lambda: app.post_json(REGISTER, {"email": "late@example.com",
                                                     "password": PASSWORD}, status=429),
                    lambda: app.put_json(PASSWORD_CHANGE, {"current_password": PASSWORD,
                                                           "new_password": "Changed-pass-2"},
                                         headers=bearer(token), status=429),
                    lambda: app.put_json(PASSWORD_CHANGE, {}, status=429)):
        reply = request()
        assert remaining(reply.headers)[0] == 0 and reply.json["message"].startswith("Too many")
        assert "WWW-Authenticate" not in reply.headers
    # another address has its own window: there, late@ was never registered and member's
    # password is unchanged; other operations are not limited
    other = limited(6, "192.0.2.2")
    late = other.post_json(LOGIN, {"email": "late@example.com", "password": PASSWORD},
                           status=401)
    assert remaining(late.headers)[0] == 5
    member = other.post_json(LOGIN, {"email": "member@example.com", "password": PASSWORD},
                             status=200)
    assert remaining(member.headers)[0] == 4
    health = app.get(f"{API}/health")
    assert "RateLimit" not in health.headers and "RateLimit-Policy" not in health.headers
    me = app.get(f"{API}/auth/user", headers=bearer(token), status=200)
    assert "RateLimit" not in me.headers


def test_the_window_ends_and_a_new_one_starts_full(limited, db):
    app = limited(2)
    app.post_json(LOGIN, UNKNOWN, status=401)
    app.post_json(LOGIN, UNKNOWN, status=401)
    app.post_json(LOGIN, UNKNOWN, status=429)
    run_sql(db, "rate_age_windows", seconds=60)  # the window started a minute ago
    reply = app.post_json(LOGIN, UNKNOWN, status=401)
    r, t = remaining(reply.headers)
    assert r == 1 and t >= 59


def test_no_rate_limit_no_headers_and_no_rows(limited, db):
    app = limited(0)
    for _ in range(3):
        reply = app.post_json(LOGIN, UNKNOWN, status=401)
        assert "RateLimit" not in reply.headers and "RateLimit-Policy" not in reply.headers
    assert run_sql(db, "rate_windows") == []


@pytest.mark.e2e  # starts processes (tests/tiers.py)
def test_ended_windows_are_purged_by_new_addresses_and_bin_purge_revoked(limited, db,
                                                                           database_url):
    for i in range(3):
        limited(5, f"192.0.2.{i}").post_json(LOGIN, UNKNOWN, status=401)
    run_sql(db, "rate_age_windows", seconds=61)
    limited(5, "192.0.2.1").post_json(LOGIN, UNKNOWN, status=401)  # a window starts again
    limited(5, "198.51.100.7").post_json(LOGIN, UNKNOWN, status=401)  # a new address
    assert [str(row["address"]) for row in run_sql(db, "rate_windows")] == [
        "192.0.2.1", "198.51.100.7"]
    run_sql(db, "rate_age_windows", seconds=61)
    done = run_purge(database_url)
    assert done.returncode == 0, done.stderr
    assert "purged 2 ended rate-limit window(s)" in done.stdout
    assert run_sql(db, "rate_windows") == []


def test_the_limit_costs_login_and_password_changes_no_statement(limited, users,
                                                                 statements):  # noqa: F811
    """Login and password changes take their unit inside the lock's statement; register in
    one of its own, before the hash (its only other statement comes after it)."""
    users.create("member@example.com", PASSWORD, admin=False)
    app = limited(30)
    statements.clear()
    token = app.post_json(LOGIN, {"email": "member@example.com", "password": PASSWORD},
                          status=200).json["access_token"]
    assert Counter(statements) == Counter(["login_lock", "user_by_email", "start_session",
                                           "login_succeeded"])
    statements.clear()
    app.put_json(PASSWORD_CHANGE, {"current_password": PASSWORD,
                                   "new_password": "Changed-pass-2"},
                 headers=bearer(token), status=200)
    assert Counter(statements) == Counter(["authenticate", "password_hash_and_lock",
                                           "change_password", "revoke_other_sessions"])
    statements.clear()
    app.post_json(REGISTER, {"email": "new@example.com", "password": PASSWORD}, status=201)
    assert statements == ["auth_rate_take", "register_user"]


# -- through the real front (bin/serve: nginx, then gunicorn) ---------------------------------

@pytest.mark.e2e
def test_through_the_front_r_counts_down_to_the_429_and_nginx_is_the_ceiling(
        front_server):  # noqa: F811
    server = front_server(AUTH_RATE_LIMIT="6")  # nginx: 12 per minute, a burst of 6
    replies = [call(server, "POST", LOGIN, data=unknown(i),
                    headers={"Origin": "https://client.example"}) for i in range(14)]
    statuses = [r.status for r in replies]
    assert statuses[:6] == [401] * 6 and set(statuses[6:]) == {429}, statuses
    for reply in replies:
        assert reply.headers["RateLimit-Policy"] == '"auth";q=6;w=60', reply.status
    assert [remaining(r.headers)[0] for r in replies] == [5, 4, 3, 2, 1, 0] + [0] * 8
    window = remaining(replies[0].headers)[1]
    assert 1 <= window <= 60
    for reply in replies[6:]:
        r, t = remaining(reply.headers)
        assert 1 <= t <= 60 and reply.headers["Retry-After"] == str(t)
        assert reply.json == {"status": "fail", "message": TOO_MANY.format(n=t)}
        assert "RateLimit" in reply.headers["Access-Control-Expose-Headers"]
    # the 7th reached the application (nginx lets 7 through at once): the window's t; past
    # nginx's burst, its own 429s: one request's share of its 12 per minute
    assert remaining(replies[6].headers)[1] <= window
    assert {remaining(r.headers)[1] for r in replies[7:]} <= {5, *range(1, window + 1)}
    assert 5 in {remaining(r.headers)[1] for r in replies[7:]}
    other = call(server, "GET", f"{API}/health")
    assert "RateLimit-Policy" not in other.headers  # only the limited requests


@pytest.mark.e2e
def test_through_the_front_parallel_requests_pass_exactly_the_quota(front_server):  # noqa: F811
    server = front_server(AUTH_RATE_LIMIT="5")
    replies = []

    def send(i: int) -> None:
        replies.append(call(server, "POST", LOGIN, data=unknown(i)))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = Counter(r.status for r in replies)
    assert statuses == {401: 5, 429: 5}, statuses
    assert sorted(remaining(r.headers)[0] for r in replies if r.status == 401) == [0, 1, 2, 3, 4]


@pytest.mark.e2e
def test_no_rate_limit_no_headers(front_server):  # noqa: F811
    server = front_server(AUTH_RATE_LIMIT="0")
    reply = call(server, "POST", LOGIN, data={"email": "x"})
    assert reply.status == 400
    assert "RateLimit-Policy" not in reply.headers and "RateLimit" not in reply.headers
