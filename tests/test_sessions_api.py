"""Sessions (docs/API.md §8.4): login and register start one, refresh rotates its refresh token (a
reuse revokes it), logout and logout-all revoke, a password change revokes the others; and
expired sessions and spent refresh tokens are purged with a bounded cost."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import uuid
from dataclasses import replace

import jwt
import pytest
import webtest

from tests.helpers import API, PASSWORD, SECRET, bearer, claims_for, forge, forged_sid
from tests.helpers_sql import legacy_session, run_sql
from widgetsvc.app import create_app
from widgetsvc.auth import accounts as accounts_module
from widgetsvc.config import Config, ConfigError
from widgetsvc.ops.localdb import REPO_ROOT

REGISTER = f"{API}/auth/register"
LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
LOGOUT = f"{API}/auth/logout"
LOGOUT_ALL = f"{API}/auth/logout-all"
PASSWORD_URL = f"{API}/auth/password"
USER = f"{API}/auth/user"

EMAIL = "session@example.com"
NEW_PASSWORD = "Another-pass-2"
INVALID_REFRESH = {"status": "fail", "message": "Invalid refresh token. Please log in again."}
REUSED = {"status": "fail", "message": "Refresh token reused. Please log in again."}
BLACKLISTED = {"message": "Token blacklisted. Please log in again."}
LOGIN_FAILED = {"status": "fail", "message": "email or password does not match"}
BUSY = {"message": "Service Unavailable: too many logins in progress"}
VALIDATION = "Input payload validation failed"
MISSING = "Missing required parameter in the post body"
INCORRECT = {"message": VALIDATION, "errors": {"current_password": "Password is incorrect."}}
TOKEN_KEYS = ["status", "message", "access_token", "token_type", "expires_in", "refresh_token",
              "refresh_expires_in"]
KINDS = ["json", "form", "multipart"]


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


def send(app, kind: str, method: str, url: str, fields: dict, status, headers=None):
    """``fields`` as a JSON object, a url-encoded form or a multipart form."""
    if kind == "json":
        do_json = {"POST": app.post_json, "PUT": app.put_json, "PATCH": app.patch_json}[method]
        return do_json(url, fields, status=status, headers=headers)
    content_type = None if kind == "form" else "multipart/form-data"
    do = {"POST": app.post, "PUT": app.put, "PATCH": app.patch}[method]
    kwargs = {"content_type": content_type} if content_type else {}
    return do(url, fields, status=status, headers=headers, **kwargs)


def log_in(app, email: str = EMAIL, password: str = PASSWORD) -> dict:
    return app.post_json(LOGIN, {"email": email, "password": password}, status=200).json


def refresh(app, refresh_token, status=200, kind="json"):
    return send(app, kind, "POST", REFRESH, {"refresh_token": refresh_token}, status=status)


def claims(token: str) -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"])


def decode_refresh(token: str) -> tuple[uuid.UUID, int, bytes, bytes]:
    """session id, generation, random part and MAC of a current-format refresh token."""
    assert re.fullmatch(r"[A-Za-z0-9_-]{75}", token), token
    raw = base64.urlsafe_b64decode(token + "=")
    return uuid.UUID(bytes=raw[:16]), int.from_bytes(raw[16:24], "big"), raw[24:40], raw[40:]


def random_part_hash(token: str) -> bytes:
    return hashlib.sha256(decode_refresh(token)[2]).digest()


def assert_fail(resp, status: int, body: dict) -> None:
    assert resp.status_int == status
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json == body


@pytest.fixture
def account(users):
    return users.create(EMAIL, PASSWORD, admin=False)


# -- sessions start at login and register ------------------------------------------------------

def test_login_starts_a_session_stored_only_as_a_hash(app, db, account):
    first, second = log_in(app), log_in(app)
    rows = run_sql(db, "sess_rows", email=EMAIL)
    fixture_session, *started = rows  # the users fixture's own session comes first
    assert len(started) == 2
    for body, row in zip((first, second), started, strict=True):
        session_id, generation, _, _ = decode_refresh(body["refresh_token"])
        assert claims(body["access_token"])["sid"] == str(row["id"]) == str(session_id)
        assert generation == row["refresh_generation"] == 0
        assert bytes(row["refresh_hash"]) == random_part_hash(body["refresh_token"])
        assert row["revoked_at"] is None
        # the token itself is nowhere in the database
        assert run_sql(db, "sess_text_holds", needle=body["refresh_token"])[0]["rows"] == 0
    assert first["refresh_token"] != second["refresh_token"]


def test_register_starts_a_session(app, db, kind):
    body = send(app, kind, "POST", REGISTER, {"email": EMAIL, "password": PASSWORD},
                status=201).json
    assert list(body) == TOKEN_KEYS and body["refresh_expires_in"] == 30 * 24 * 3600
    (row,) = run_sql(db, "sess_rows", email=EMAIL)
    assert claims(body["access_token"])["sid"] == str(row["id"])
    assert refresh(app, body["refresh_token"]).json["message"] == "successfully refreshed"


def test_a_register_that_conflicts_starts_no_session(app, db, account):
    before = run_sql(db, "sess_rows", email=EMAIL)
    app.post_json(REGISTER, {"email": EMAIL.upper(), "password": PASSWORD}, status=409)
    assert run_sql(db, "sess_rows", email=EMAIL) == before


# -- refresh -----------------------------------------------------------------------------------

def test_refresh_rotates_within_the_same_session(app, db, account, kind):
    login = log_in(app)
    resp = refresh(app, login["refresh_token"], kind=kind)
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    body = resp.json
    assert list(body) == TOKEN_KEYS
    assert body["status"] == "success" and body["message"] == "successfully refreshed"
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert body["refresh_expires_in"] == 30 * 24 * 3600
    assert body["refresh_token"] != login["refresh_token"]
    old, new = claims(login["access_token"]), claims(body["access_token"])
    assert new["sid"] == old["sid"] and new["sub"] == old["sub"] and new["jti"] != old["jti"]
    assert app.get(USER, headers=bearer(body["access_token"])).json["email"] == EMAIL
    # the new token names the same session, one generation on; the row holds only its hash
    session_id, generation, _, _ = decode_refresh(body["refresh_token"])
    assert (str(session_id), generation) == (old["sid"], 1)
    row = run_sql(db, "sess_rows", email=EMAIL)[-1]
    assert bytes(row["refresh_hash"]) == random_part_hash(body["refresh_token"])
    assert row["refresh_generation"] == 1
    assert run_sql(db, "sess_spent") == []  # nothing kept per refresh
    # and a chain of refreshes keeps going
    again = refresh(app, body["refresh_token"]).json
    assert claims(again["access_token"])["sid"] == old["sid"]


def test_a_reused_refresh_token_revokes_the_whole_session(app, account, kind):
    login = log_in(app)
    other = log_in(app)  # another session of the same user: untouched
    rotated = refresh(app, login["refresh_token"]).json
    assert_fail(refresh(app, login["refresh_token"], status=401, kind=kind), 401, REUSED)
    # the session is gone: its newest refresh token and all its access tokens
    assert_fail(refresh(app, rotated["refresh_token"], status=401), 401, INVALID_REFRESH)
    for token in (login["access_token"], rotated["access_token"]):
        assert app.get(USER, headers=bearer(token), status=401).json == BLACKLISTED
    # the spent token stays a reuse (the session is already revoked)
    assert_fail(refresh(app, login["refresh_token"], status=401), 401, REUSED)
    app.get(USER, headers=bearer(other["access_token"]), status=200)
    refresh(app, other["refresh_token"], status=200)


@pytest.mark.parametrize("token", [
    "A" * 43, "unknown-but-well-formed-refresh-token-0123456789", "", "short", "A" * 42,
    "A" * 43 + "=", "A" * 42 + "+", "A" * 42 + "/", "A" * 600, "é" * 43, "A" * 42 + "\x00",
], ids=["unknown", "unknown-long", "empty", "short", "42-chars", "padded", "plus", "slash",
        "huge", "non-ascii", "nul"])
def test_an_unknown_or_malformed_refresh_token_is_invalid(app, account, token):
    assert_fail(refresh(app, token, status=401), 401, INVALID_REFRESH)


def test_an_expired_refresh_token_is_invalid(app, db, account):
    login = log_in(app)
    run_sql(db, "sess_expire", session_id=claims(login["access_token"])["sid"])
    assert_fail(refresh(app, login["refresh_token"], status=401), 401, INVALID_REFRESH)


def test_a_spent_legacy_token_past_its_own_expiry_is_invalid_not_reused(app, db, account):
    session_id, legacy = legacy_session(db, EMAIL)
    rotated = refresh(app, legacy).json
    run_sql(db, "sess_expire_spent", session_id=session_id)
    assert_fail(refresh(app, legacy, status=401), 401, INVALID_REFRESH)
    refresh(app, rotated["refresh_token"], status=200)  # and the session was not revoked


@pytest.mark.parametrize("fields", [{}, {"refresh": "x"}, {"token": "x"}])
def test_a_missing_refresh_token_is_400(app, kind, fields):
    resp = send(app, kind, "POST", REFRESH, fields, status=400)
    assert resp.json == {"message": VALIDATION, "errors": {"refresh_token": MISSING}}


def test_no_body_at_all_misses_the_refresh_token(app):
    resp = app.post(REFRESH, status=400)
    assert resp.json == {"message": VALIDATION, "errors": {"refresh_token": MISSING}}


@pytest.mark.parametrize("value", [42, None, True, ["x"], {"a": "b"}])
def test_a_refresh_token_that_is_not_a_string_is_400(app, value):
    resp = app.post_json(REFRESH, {"refresh_token": value}, status=400)
    assert resp.json == {"message": VALIDATION,
                         "errors": {"refresh_token": "refresh_token must be a string"}}


def test_refresh_needs_no_access_token_and_ignores_one(app, account):
    login = log_in(app)
    resp = app.post_json(REFRESH, {"refresh_token": login["refresh_token"]},
                         headers=bearer("not-a-token"), status=200)
    assert resp.json["message"] == "successfully refreshed"


def test_refresh_hashes_no_password(app, account, monkeypatch):
    """A refresh is SHA-256 only: no bcrypt, so it can never wait for a hashing slot."""
    login = log_in(app)

    def refuse(*args, **kwargs):
        raise AssertionError("a refresh computed a password hash")

    monkeypatch.setattr(accounts_module, "hash_password", refuse)
    monkeypatch.setattr(accounts_module, "check_password", refuse)
    refresh(app, login["refresh_token"], status=200)


def test_the_refreshed_token_says_what_the_database_says_now(app, db, account):
    login = log_in(app)
    run_sql(db, "auth_set_admin_by_email", admin=True, email=EMAIL)
    assert claims(refresh(app, login["refresh_token"]).json["access_token"])["admin"] is True


def test_the_refresh_lifetime_comes_from_the_configuration(config, db, clock, account):
    app = webtest.TestApp(create_app(replace(config, refresh_token_lifetime=7200), db=db,
                                     clock=clock))
    login = log_in(app)
    assert login["refresh_expires_in"] == 7200
    row = run_sql(db, "sess_rows", email=EMAIL)[-1]
    lifetime = (row["expires_at"] - row["created_at"]).total_seconds()
    assert 7190 <= lifetime <= 7210
    assert refresh(app, login["refresh_token"]).json["refresh_expires_in"] == 7200


def test_the_refresh_lifetime_may_not_be_shorter_than_an_access_token():
    env = {"DATABASE_URL": "postgresql:///x", "SECRET_KEY": "k", "WIDGETSVC_ENV": "test"}
    assert Config.from_env(env).refresh_token_lifetime == 30 * 24 * 3600
    with pytest.raises(ConfigError, match=r"^REFRESH_TOKEN_LIFETIME=899: shorter than "
                                          r"TOKEN_LIFETIME=900 \(seconds, at least "
                                          r"TOKEN_LIFETIME\)$"):
        Config.from_env({**env, "REFRESH_TOKEN_LIFETIME": "899"})
    assert Config.from_env({**env, "REFRESH_TOKEN_LIFETIME": "900"}).refresh_token_lifetime \
        == 900


# -- logout, logout-all ------------------------------------------------------------------------

def test_logout_revokes_the_session_and_its_refresh_token(app, account):
    login = log_in(app)
    rotated = refresh(app, login["refresh_token"]).json
    other = log_in(app)
    app.post(LOGOUT, headers=bearer(rotated["access_token"]), status=200)
    for token in (login["access_token"], rotated["access_token"]):
        assert app.get(USER, headers=bearer(token), status=401).json == BLACKLISTED
    assert_fail(refresh(app, rotated["refresh_token"], status=401), 401, INVALID_REFRESH)
    app.get(USER, headers=bearer(other["access_token"]), status=200)
    refresh(app, other["refresh_token"], status=200)


def test_logout_all_revokes_every_session_of_the_caller(app, users, account):
    sessions = [log_in(app) for _ in range(3)]
    users.create("bystander@example.com", PASSWORD, admin=False)
    bystander = log_in(app, "bystander@example.com")
    resp = app.post(LOGOUT_ALL, headers=bearer(sessions[0]["access_token"]), status=200)
    assert resp.json == {"status": "success",
                         "message": "successfully logged out of all sessions"}
    for session in sessions:
        assert app.get(USER, headers=bearer(session["access_token"]),
                       status=401).json == BLACKLISTED
        assert_fail(refresh(app, session["refresh_token"], status=401), 401, INVALID_REFRESH)
    app.get(USER, headers=bearer(bystander["access_token"]), status=200)
    fresh = log_in(app)  # logging in again starts a new session
    app.get(USER, headers=bearer(fresh["access_token"]), status=200)


def test_logout_all_needs_a_token(app):
    resp = app.post(LOGOUT_ALL, status=401)
    assert resp.json == {"message": "Unauthorized"}
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="registered_users@mydomain.com"'


# -- password change ---------------------------------------------------------------------------

def change(app, kind, token, fields, status):
    return send(app, kind, "PUT", PASSWORD_URL, fields, status=status, headers=bearer(token))


def test_a_password_change_revokes_the_other_sessions_only(app, account, kind):
    mine, other = log_in(app), log_in(app)
    resp = change(app, kind, mine["access_token"],
                  {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, status=200)
    assert resp.json == {"status": "success", "message": "password changed"}
    app.get(USER, headers=bearer(mine["access_token"]), status=200)
    assert app.get(USER, headers=bearer(other["access_token"]), status=401).json == BLACKLISTED
    assert_fail(refresh(app, other["refresh_token"], status=401), 401, INVALID_REFRESH)
    refresh(app, mine["refresh_token"], status=200)
    assert_fail(app.post_json(LOGIN, {"email": EMAIL, "password": PASSWORD}, status=401), 401,
                LOGIN_FAILED)
    log_in(app, password=NEW_PASSWORD)


def test_a_wrong_current_password_is_400_and_changes_nothing(app, db, account, kind):
    mine, other = log_in(app), log_in(app)
    stored = run_sql(db, "sess_user_flags", email=EMAIL)[0]["password_hash"]
    for wrong in ("Wrong-pass-1", "short", "x" * 73, PASSWORD.lower()):
        resp = change(app, kind, mine["access_token"],
                      {"current_password": wrong, "new_password": NEW_PASSWORD}, status=400)
        assert resp.json == INCORRECT
    assert run_sql(db, "sess_user_flags", email=EMAIL)[0]["password_hash"] == stored
    app.get(USER, headers=bearer(other["access_token"]), status=200)
    log_in(app)


@pytest.mark.parametrize(("fields", "errors"), [
    ({}, {"current_password": MISSING, "new_password": MISSING}),
    ({"current_password": PASSWORD}, {"new_password": MISSING}),
    ({"new_password": NEW_PASSWORD}, {"current_password": MISSING}),
    ({"current_password": PASSWORD, "new_password": "short"},
     {"new_password": "Password must be at least 8 characters."}),
    ({"current_password": PASSWORD, "new_password": "é" * 37},
     {"new_password": "Password must be at most 72 bytes."}),
    # input validation comes before the password check
    ({"current_password": "Wrong-pass-1", "new_password": "short"},
     {"new_password": "Password must be at least 8 characters."}),
])
def test_password_change_input_rules(app, account, kind, fields, errors):
    mine = log_in(app)
    resp = change(app, kind, mine["access_token"], fields, status=400)
    assert resp.json == {"message": VALIDATION, "errors": errors}
    log_in(app)  # unchanged


@pytest.mark.parametrize("field", ["current_password", "new_password"])
def test_password_change_fields_must_be_strings(app, account, field):
    mine = log_in(app)
    fields = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, field: 12345678}
    resp = app.put_json(PASSWORD_URL, fields, headers=bearer(mine["access_token"]), status=400)
    assert resp.json == {"message": VALIDATION, "errors": {field: f"{field} must be a string"}}


def test_password_change_needs_a_live_token_before_anything_else(app, account):
    resp = app.put_json(PASSWORD_URL, {}, status=401)
    assert resp.json == {"message": "Unauthorized"}
    mine = log_in(app)
    app.post(LOGOUT, headers=bearer(mine["access_token"]), status=200)
    resp = app.put_json(PASSWORD_URL, {}, headers=bearer(mine["access_token"]), status=401)
    assert resp.json == BLACKLISTED


# -- purging -----------------------------------------------------------------------------------

def counts(db) -> dict:
    return run_sql(db, "sess_counts")[0]


def test_a_login_purges_at_most_100_expired_sessions(app, db, account):
    run_sql(db, "sess_insert_expired", email=EMAIL, prefix="old-", count=150, spent=0)
    assert counts(db)["expired_sessions"] == 150
    log_in(app)
    assert counts(db)["expired_sessions"] == 50
    log_in(app)
    assert counts(db)["expired_sessions"] == 0
    assert counts(db)["live_sessions"] == 3  # the fixture's and the two logins'


def test_a_legacy_refresh_purges_at_most_100_expired_spent_tokens(app, db, account):
    """Only legacy tokens still leave a spent row (one per session), and their refreshes
    purge: a current-format refresh writes and purges nothing there."""
    run_sql(db, "sess_insert_expired", email=EMAIL, prefix="old-", count=3, spent=50)
    assert counts(db)["expired_spent"] == 150
    login = log_in(app)  # also purges the 3 expired sessions, not their spent tokens
    assert counts(db)["expired_sessions"] == 0 and counts(db)["expired_spent"] == 150
    refresh(app, login["refresh_token"])
    assert counts(db)["expired_spent"] == 150 and counts(db)["live_spent"] == 0
    refresh(app, legacy_session(db, EMAIL)[1])
    assert counts(db)["expired_spent"] == 50 and counts(db)["live_spent"] == 1
    refresh(app, legacy_session(db, EMAIL)[1])
    assert counts(db)["expired_spent"] == 0 and counts(db)["live_spent"] == 2


@pytest.mark.e2e
def test_bin_purge_revoked_also_purges_sessions_and_spent_tokens(app, db, database_url,
                                                                  account):
    run_sql(db, "sess_insert_expired", email=EMAIL, prefix="old-", count=120, spent=3)
    login = log_in(app)
    refresh(app, login["refresh_token"])
    refresh(app, legacy_session(db, EMAIL)[1])  # a legacy token's last hash is kept as spent
    before = counts(db)
    env = {**os.environ, "DATABASE_URL": database_url, "WIDGETSVC_ENV": "test"}
    env.pop("SECRET_KEY", None)
    done = subprocess.run([str(REPO_ROOT / "bin" / "purge-revoked")], env=env,
                          capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    expired_sessions = before["expired_sessions"]
    lines = done.stdout.splitlines()
    assert "purged 0 expired revocation(s)" in lines
    assert f"purged {expired_sessions} expired session(s)" in lines
    assert f"purged {before['expired_spent']} expired spent refresh token(s)" in lines
    assert counts(db) == {"expired_sessions": 0, "live_sessions": before["live_sessions"],
                          "expired_spent": 0, "live_spent": 1}



def test_a_token_naming_another_users_session_or_none_is_refused(app, users, account):
    other = users.create("other@example.com", PASSWORD, admin=False)
    theirs = claims(log_in(app, "other@example.com")["access_token"])["sid"]
    for sid in (theirs, forged_sid(other.public_id), str(uuid.uuid4())):
        token = forge(claims_for(account.public_id, sid=sid))
        assert app.get(USER, headers=bearer(token), status=401).json == BLACKLISTED
    # the control: the same forging with the account's own session
    app.get(USER, headers=bearer(forge(claims_for(account.public_id))), status=200)


def test_with_every_hashing_slot_busy_refresh_works_and_password_change_is_503(app, account):
    """docs/API.md §8.1 and §8.4: a refresh is SHA-256 only and takes no hashing slot; a
    password change needs two bcrypt hashes and gets the 503 like a login."""
    from tests.test_login_lock import _resources, hold_all

    mine = log_in(app)
    slots = next(r for r in _resources(app) if hasattr(r, "slots")).slots
    with hold_all(slots):
        assert app.post_json(LOGIN, {"email": EMAIL, "password": PASSWORD},
                             status=503).json == BUSY
        refresh(app, mine["refresh_token"], status=200)
        resp = app.put_json(PASSWORD_URL, {"current_password": PASSWORD,
                                           "new_password": NEW_PASSWORD},
                            headers=bearer(mine["access_token"]), status=503)
        assert resp.json == BUSY and resp.headers["Retry-After"] == "1"
        # validation still comes first, and a current password that breaks the rules needs
        # no hash at all
        app.put_json(PASSWORD_URL, {}, headers=bearer(mine["access_token"]), status=400)
        assert app.put_json(PASSWORD_URL, {"current_password": "short",
                                           "new_password": NEW_PASSWORD},
                            headers=bearer(mine["access_token"]), status=400).json == INCORRECT
    log_in(app)  # the password did not change
