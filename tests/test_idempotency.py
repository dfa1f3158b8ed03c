"""Idempotency-Key on POST /widgets (docs/API.md §8.8): a retry gets the first answer again and
changes nothing, a different body is a 422, a key in flight is a 409, a key is kept 24 hours,
and the key and its widget are written by one statement."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests import live_http
from tests.helpers import API, PASSWORD, LiveServer, bearer, login
from tests.helpers_sql import TESTING_QUERIES, run_sql
from tests.test_revocation import run_purge
from widgetsvc import idempotency

WIDGET = {"name": "gear", "info_url": "https://www.fakesite.com", "deadline": "2099-01-01"}
KEY = "order-42"


def post(app, token, body=WIDGET, key: str | None = KEY, status="*"):
    headers = {**bearer(token), **({"Idempotency-Key": key} if key is not None else {})}
    return app.post_json(f"{API}/widgets", body, headers=headers, status=status)


def widget_count(app, token) -> int:
    return app.get(f"{API}/widgets", headers=bearer(token)).json["total_items"]


def test_a_replay_gets_the_same_answer_marked_and_writes_nothing(app, admin_token, db):
    first = post(app, admin_token, status=201)
    assert "Idempotent-Replayed" not in first.headers
    again = post(app, admin_token, status=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"]
    assert widget_count(app, admin_token) == 1
    assert [row["status"] for row in run_sql(db, "idem_rows")] == [201]


def test_a_replayed_name_conflict_is_the_same_409(app, admin_token):
    post(app, admin_token, key=None, status=201)  # the name is taken, without a key
    first = post(app, admin_token, status=409)
    assert "already exists" in first.json["message"]
    again = post(app, admin_token, status=409)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"


def test_the_same_key_with_a_different_body_is_a_422(app, admin_token):
    post(app, admin_token, status=201)
    other = post(app, admin_token, body={**WIDGET, "deadline": "2098-01-01"}, status=422)
    assert other.json == {"status": "fail", "message": idempotency.REUSED}
    assert widget_count(app, admin_token) == 1


def test_keys_are_per_caller(app, admin_token, users):
    post(app, admin_token, status=201)
    users.create("other-admin@example.com", PASSWORD, admin=True)
    other = login(app, "other-admin@example.com")
    # Another caller's same key is not a replay: its own request (here the name's 409).
    reply = post(app, other, status=409)
    assert "Idempotent-Replayed" not in reply.headers


def test_a_key_in_flight_gets_the_409(app, admin_token, database_url, users):
    subject = app.get(f"{API}/auth/user", headers=bearer(admin_token)).json["public_id"]
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute(TESTING_QUERIES["idem_hold_lock"],
                     {"lock_id": idempotency.lock_id("widgets", subject, KEY)})
        busy = post(app, admin_token, status=409)
    assert busy.json == {"status": "fail", "message": idempotency.IN_FLIGHT}
    assert widget_count(app, admin_token) == 0
    post(app, admin_token, status=201)  # once the first is done, the key is free


def test_a_key_is_new_again_after_24_hours(app, admin_token, db):
    post(app, admin_token, status=201)
    run_sql(db, "idem_age_keys", hours=23)
    post(app, admin_token, body={**WIDGET, "name": "other"}, status=422)  # still kept
    run_sql(db, "idem_age_keys", hours=2)
    fresh = post(app, admin_token, body={**WIDGET, "name": "other"}, status=201)
    assert "Idempotent-Replayed" not in fresh.headers
    assert [row["name"] for row in run_sql(db, "idem_rows")] == ["other"]


def test_a_recording_purges_dead_keys_of_others(app, admin_token, db):
    for n in range(3):
        post(app, admin_token, body={**WIDGET, "name": f"w{n}"}, key=f"k{n}", status=201)
    run_sql(db, "idem_age_keys", hours=25)
    post(app, admin_token, body={**WIDGET, "name": "w9"}, key="k9", status=201)
    assert [row["key"] for row in run_sql(db, "idem_rows")] == ["k9"]


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "nul\x7f"])
def test_a_bad_key_is_a_400_naming_the_header(app, admin_token, key):
    reply = app.post(f"{API}/widgets", json.dumps(WIDGET).encode(),
                     headers={**bearer(admin_token), "Content-Type": "application/json",
                              "Idempotency-Key": key.encode("utf-8").decode("latin-1")},
                     status=400)
    assert reply.json["message"] == "Input payload validation failed"
    assert reply.json["errors"] == {"Idempotency-Key": idempotency.INVALID}
    assert widget_count(app, admin_token) == 0


def test_the_longest_and_widest_keys_are_accepted(app, admin_token):
    post(app, admin_token, key="~" * 255, status=201)
    post(app, admin_token, body={**WIDGET, "name": "b"}, key=" !~azAZ09", status=201)


def test_a_refused_caller_gets_its_401_or_403_not_a_replay(app, admin_token, user_token):
    post(app, admin_token, status=201)
    post(app, user_token, status=403)


@pytest.mark.e2e
def test_bin_purge_revoked_purges_dead_keys(app, admin_token, db, database_url):
    post(app, admin_token, status=201)
    post(app, admin_token, body={**WIDGET, "name": "b"}, key="b", status=201)
    run_sql(db, "idem_age_keys", hours=25)
    post(app, admin_token, body={**WIDGET, "name": "c"}, key="c", status=201)
    assert len(run_sql(db, "idem_rows")) == 1  # the recording purged the two dead ones
    run_sql(db, "idem_age_keys", hours=25)
    done = run_purge(database_url)
    assert done.returncode == 0, done.stderr
    assert "purged 1 Idempotency-Key outcome(s) older than 24 h" in done.stdout
    assert run_sql(db, "idem_rows") == []


@pytest.mark.e2e
def test_twenty_parallel_posts_with_one_key_make_one_widget(database_url, db, users, tmp_path):
    server = LiveServer(database_url, tmp_path / "serve.log", WEB_CONCURRENCY="4",
                        GUNICORN_WORKER_CLASS="gthread", GUNICORN_THREADS="5").start()
    try:
        users.create("racer@example.com", PASSWORD, admin=True)
        token = live_http.call(server.port, "POST", f"{API}/auth/login",
                               data={"email": "racer@example.com",
                                     "password": PASSWORD}).json["access_token"]
        barrier = threading.Barrier(20)

        def one(_):
            barrier.wait(timeout=30)
            return live_http.call(server.port, "POST", f"{API}/widgets", data=WIDGET,
                                  token=token, headers={"Idempotency-Key": KEY})

        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(one, range(20)))
        created = [r for r in replies if r.status == 201]
        busy = [r for r in replies if r.status == 409]
        assert len(created) + len(busy) == 20, [(r.status, r.raw) for r in replies]
        assert all(r.json == {"status": "fail", "message": idempotency.IN_FLIGHT}
                   for r in busy)
        assert created, "at least the first request gets its 201"
        assert len({(r.raw, r.headers["ETag"], r.headers["Location"]) for r in created}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in created) <= 1
        listed = live_http.call(server.port, "GET", f"{API}/widgets", token=token).json
        assert listed["total_items"] == 1
        # A retry after the race is a replay of the one write.
        again = live_http.call(server.port, "POST", f"{API}/widgets", data=WIDGET,
                               token=token, headers={"Idempotency-Key": KEY})
        assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in created) == 1
    finally:
        server.stop()


# -- register ------------------------------------------------------------------------------

def register(app, email="new@example.com", password=PASSWORD, key: str | None = KEY,
             status="*"):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return app.post_json(f"{API}/auth/register", {"email": email, "password": password},
                         headers=headers, status=status)


def test_a_register_replay_gets_the_same_body_and_tokens_that_work(app, db):
    first = register(app, status=201)
    again = register(app, status=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json == first.json
    assert again.headers["Cache-Control"] == "no-store"
    app.get(f"{API}/auth/user", headers=bearer(again.json["access_token"]), status=200)
    refreshed = app.post_json(f"{API}/auth/refresh",
                              {"refresh_token": again.json["refresh_token"]}, status=200)
    assert refreshed.json["refresh_token"] != again.json["refresh_token"]
    # Nothing secret is kept: only ids and a keyed digest.
    rows = run_sql(db, "idem_rows")
    assert [(r["scope"], r["owner"], r["status"]) for r in rows] == [
        ("register", "new@example.com", 201)]


def test_a_register_with_another_password_and_the_same_key_is_a_422(app):
    register(app, status=201)
    other = register(app, password=PASSWORD + "x", status=422)
    assert other.json == {"status": "fail", "message": idempotency.REUSED}
    app.post_json(f"{API}/auth/login", {"email": "new@example.com", "password": PASSWORD},
                  status=200)


def test_a_register_key_is_per_e_mail_and_its_409_is_replayed(app):
    register(app, key=None, status=201)
    first = register(app, status=409)
    again = register(app, status=409)
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    register(app, email="other@example.com", status=201)  # same key, another e-mail


def test_a_register_key_in_flight_gets_the_409(app, database_url):
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute(TESTING_QUERIES["idem_hold_lock"],
                     {"lock_id": idempotency.lock_id("register", "new@example.com", KEY)})
        busy = register(app, email="New@Example.com", status=409)
    assert busy.json == {"status": "fail", "message": idempotency.IN_FLIGHT}
    register(app, status=201)


def test_a_bad_key_on_register_is_a_400_naming_the_header(app):
    reply = register(app, key="x" * 256, status=400)
    assert reply.json["errors"] == {"Idempotency-Key": idempotency.INVALID}
    app.post_json(f"{API}/auth/login", {"email": "new@example.com", "password": PASSWORD},
                  status=401)


def test_a_keyed_post_and_its_replay_are_one_statement_each(app, admin_token, monkeypatch):
    from widgetsvc.db import Session

    seen: list[str] = []
    original = Session._run

    def counting(self, query, params):
        seen.append(query)
        return original(self, query, params)

    monkeypatch.setattr(Session, "_run", counting)
    post(app, admin_token, status=201)
    post(app, admin_token, status=201)
    post(app, admin_token, body={**WIDGET, "name": "x"}, status=422)
    assert seen == ["insert_widget_idempotent"] * 3
    seen.clear()
    register(app, status=201)
    register(app, status=201)
    assert seen == ["register_user_idempotent"] * 2
