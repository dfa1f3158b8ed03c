"""Conditional requests on widgets (docs/API.md §8.3): strong ETags, 304 for If-None-Match, and
If-Match / If-None-Match on PUT and DELETE decided in the statement that writes (412 and
nothing written), in the order of checks of §8."""

from __future__ import annotations

import re

import pytest

from tests.helpers import API, bearer
from tests.helpers_sql import run_sql

WIDGETS = f"{API}/widgets"
FUTURE = "2099-01-01"
URL = "https://www.example.com/a"
OTHER_URL = "https://www.example.com/b"
KINDS = ["json", "form"]
ETAG = re.compile(r'^"[0-9a-f]{32}"$')
NOT_AN_ETAG = '"00000000000000000000000000000000"'


def changed(name: str) -> dict:
    return {"status": "fail", "message": f"Precondition failed: {name} has changed."}


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


def put(app, token, name, kind="json", status=200, info_url=OTHER_URL, **headers):
    body = {"info_url": info_url, "deadline": FUTURE}
    do = app.put_json if kind == "json" else app.put
    return do(f"{WIDGETS}/{name}", body, headers={**bearer(token), **headers}, status=status)


def get(app, token, name, status=200, **headers):
    return app.get(f"{WIDGETS}/{name}", headers={**bearer(token), **headers}, status=status)


def delete(app, token, name, status=204, **headers):
    return app.delete(f"{WIDGETS}/{name}", headers={**bearer(token), **headers}, status=status)


def create(app, token, name, kind="json") -> str:
    body = {"name": name, "info_url": URL, "deadline": FUTURE}
    do = app.post_json if kind == "json" else app.post
    resp = do(WIDGETS, body, headers=bearer(token), status=201)
    return resp.headers["ETag"]


def stored(db, name):
    rows = run_sql(db, "sess_widget_etag", widget=name)
    return rows[0] if rows else None


# -- ETag and 304 ------------------------------------------------------------------------------

def test_post_get_and_put_send_the_same_strong_etag(app, db, admin_token, user_token, kind):
    tag = create(app, admin_token, "tagged", kind)
    assert ETAG.match(tag)
    assert tag == f'"{stored(db, "tagged")["etag"].hex}"'
    assert get(app, user_token, "tagged").headers["ETag"] == tag
    updated = put(app, admin_token, "tagged", kind).headers["ETag"]
    assert ETAG.match(updated) and updated != tag
    assert get(app, user_token, "TAGGED").headers["ETag"] == updated


def test_every_update_changes_the_etag_even_with_the_same_content(app, admin_token):
    tags = {create(app, admin_token, "same")}
    for _ in range(5):
        tags.add(put(app, admin_token, "same", info_url=URL).headers["ETag"])
    assert len(tags) == 6


def test_a_recreated_widget_never_gets_an_old_etag(app, admin_token):
    old = create(app, admin_token, "phoenix")
    delete(app, admin_token, "phoenix")
    new = create(app, admin_token, "phoenix")
    assert new != old
    put(app, admin_token, "phoenix", status=412, **{"If-Match": old})


def test_a_put_that_creates_sends_the_etag_and_location(app, admin_token, user_token):
    resp = put(app, admin_token, "fresh", status=201)
    assert ETAG.match(resp.headers["ETag"])
    assert resp.headers["Location"].endswith("/api/v1/widgets/fresh")
    assert get(app, user_token, "fresh").headers["ETag"] == resp.headers["ETag"]


@pytest.mark.parametrize("header", ["{tag}", "W/{tag}", f'{NOT_AN_ETAG}, {{tag}}', "*",
                                    " {tag} ", 'junk, {tag}'])
def test_if_none_match_with_the_current_etag_is_304(app, admin_token, user_token, header):
    tag = create(app, admin_token, "cached")
    resp = get(app, user_token, "cached", status=304, **{"If-None-Match": header.format(tag=tag)})
    assert resp.body == b""
    assert resp.headers["ETag"] == tag


@pytest.mark.parametrize("header", [NOT_AN_ETAG, "W/" + NOT_AN_ETAG, "junk", '"cached"'])
def test_if_none_match_with_another_etag_is_200(app, admin_token, user_token, header):
    tag = create(app, admin_token, "cached")
    resp = get(app, user_token, "cached", status=200, **{"If-None-Match": header})
    assert resp.json["name"] == "cached" and resp.headers["ETag"] == tag


def test_an_old_etag_gets_the_new_body(app, admin_token, user_token):
    old = create(app, admin_token, "moving")
    put(app, admin_token, "moving")
    resp = get(app, user_token, "moving", status=200, **{"If-None-Match": old})
    assert resp.json["info_url"] == OTHER_URL


def test_if_none_match_on_a_missing_widget_is_still_404(app, user_token):
    resp = get(app, user_token, "nothing", status=404, **{"If-None-Match": "*"})
    assert resp.json == {"status": "fail", "message": "nothing not found in database."}


def test_a_304_still_needs_a_valid_caller(app, admin_token, user_token):
    tag = create(app, admin_token, "private")
    app.post(f"{API}/auth/logout", headers=bearer(user_token))
    resp = get(app, user_token, "private", status=401, **{"If-None-Match": tag})
    assert resp.json == {"message": "Token blacklisted. Please log in again."}
    assert "ETag" not in resp.headers


# -- If-Match on PUT ---------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["{tag}", f"{NOT_AN_ETAG}, {{tag}}", "*"])
def test_put_with_a_matching_if_match_updates(app, db, admin_token, kind, header):
    tag = create(app, admin_token, "guarded")
    resp = put(app, admin_token, "guarded", kind, status=200,
               **{"If-Match": header.format(tag=tag)})
    assert resp.json == {"status": "success", "message": "'guarded' was successfully updated"}
    assert resp.headers["ETag"] == f'"{stored(db, "guarded")["etag"].hex}"' != tag
    assert stored(db, "guarded")["info_url"] == OTHER_URL


@pytest.mark.parametrize("header", [NOT_AN_ETAG, "W/{tag}", "junk", '"guarded"'])
def test_put_with_a_stale_or_weak_if_match_is_412_and_writes_nothing(app, db, admin_token,
                                                                     kind, header):
    tag = create(app, admin_token, "guarded")
    resp = put(app, admin_token, "GUARDED", kind, status=412,
               **{"If-Match": header.format(tag=tag)})
    assert resp.json == changed("guarded")
    assert resp.headers["Content-Type"] == "application/json"
    assert "ETag" not in resp.headers
    assert stored(db, "guarded")["info_url"] == URL
    assert f'"{stored(db, "guarded")["etag"].hex}"' == tag


def test_lost_update_is_prevented(app, admin_token):
    tag = create(app, admin_token, "shared")
    put(app, admin_token, "shared", info_url="https://www.example.com/first",
        **{"If-Match": tag})
    resp = put(app, admin_token, "shared", info_url="https://www.example.com/second",
               status=412, **{"If-Match": tag})
    assert resp.json == changed("shared")


@pytest.mark.parametrize("header", ["*", NOT_AN_ETAG])
def test_put_if_match_on_a_missing_widget_is_412_and_creates_nothing(app, db, admin_token,
                                                                    header):
    resp = put(app, admin_token, "ghost", status=412, **{"If-Match": header})
    assert resp.json == changed("ghost")
    assert stored(db, "ghost") is None


# -- If-None-Match on PUT ----------------------------------------------------------------------

def test_put_if_none_match_star_only_creates(app, db, admin_token, kind):
    resp = put(app, admin_token, "new-one", kind, status=201, **{"If-None-Match": "*"})
    assert resp.json == {"status": "success", "message": "New widget added: new-one."}
    assert ETAG.match(resp.headers["ETag"])
    resp = put(app, admin_token, "new-one", kind, status=412, info_url=URL,
               **{"If-None-Match": "*"})
    assert resp.json == changed("new-one")
    assert stored(db, "new-one")["info_url"] == OTHER_URL


def test_put_if_none_match_with_the_current_etag_is_412(app, db, admin_token):
    tag = create(app, admin_token, "tagged")
    put(app, admin_token, "tagged", status=412, **{"If-None-Match": tag})
    assert stored(db, "tagged")["info_url"] == URL
    put(app, admin_token, "tagged", status=200, **{"If-None-Match": NOT_AN_ETAG})


@pytest.mark.parametrize("exists", [True, False])
def test_put_with_if_match_and_if_none_match_star_is_always_412(app, db, admin_token, exists):
    if exists:
        create(app, admin_token, "both")
    put(app, admin_token, "both", status=412, **{"If-Match": "*", "If-None-Match": "*"})
    assert (stored(db, "both") is not None) is exists
    if exists:
        assert stored(db, "both")["info_url"] == URL


# -- DELETE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["{tag}", "*", f"{NOT_AN_ETAG},{{tag}}"])
def test_delete_with_a_matching_if_match(app, db, admin_token, header):
    tag = create(app, admin_token, "doomed")
    delete(app, admin_token, "doomed", status=204, **{"If-Match": header.format(tag=tag)})
    assert stored(db, "doomed") is None


@pytest.mark.parametrize(("header", "value"), [("If-Match", NOT_AN_ETAG),
                                               ("If-Match", "W/{tag}"),
                                               ("If-None-Match", "*"),
                                               ("If-None-Match", "{tag}")])
def test_delete_with_a_failing_precondition_is_412_and_keeps_it(app, db, admin_token, header,
                                                                value):
    tag = create(app, admin_token, "kept")
    resp = delete(app, admin_token, "kept", status=412, **{header: value.format(tag=tag)})
    assert resp.json == changed("kept")
    assert stored(db, "kept") is not None


def test_delete_of_a_missing_widget_is_404_before_any_precondition(app, admin_token):
    for headers in ({"If-Match": "*"}, {"If-Match": NOT_AN_ETAG}, {"If-None-Match": "*"}):
        resp = delete(app, admin_token, "absent", status=404, **headers)
        assert resp.json == {"status": "fail", "message": "absent not found in database."}
    resp = delete(app, admin_token, "bad%20name", status=404, **{"If-Match": "*"})
    assert resp.json == {"status": "fail", "message": "bad name not found in database."}


# -- order of checks ---------------------------------------------------------------------------

def test_validation_comes_before_the_precondition(app, db, admin_token):
    create(app, admin_token, "order")
    resp = app.put_json(f"{WIDGETS}/order", {"info_url": "nope", "deadline": FUTURE},
                        headers={**bearer(admin_token), "If-Match": NOT_AN_ETAG}, status=400)
    assert resp.json == {"message": "Input payload validation failed",
                         "errors": {"info_url": "nope is not a valid URL"}}


def test_auth_comes_before_the_precondition(app, admin_token, user_token):
    create(app, admin_token, "order")
    headers = {"If-Match": NOT_AN_ETAG}
    resp = app.put_json(f"{WIDGETS}/order", {}, headers=headers, status=401)
    assert resp.json == {"message": "Unauthorized"}
    resp = app.delete(f"{WIDGETS}/order", headers={**bearer(user_token), **headers},
                      status=403)
    assert resp.json == {"message": "You are not an administrator"}


def test_the_precondition_comes_before_the_name_conflict_of_put(app, admin_token):
    """PUT has no conflict of its own; If-None-Match: * on an existing widget is the 412."""
    create(app, admin_token, "taken")
    put(app, admin_token, "taken", status=412, **{"If-None-Match": "*"})


# -- CORS --------------------------------------------------------------------------------------

def test_cors_exposes_etag_and_allows_the_condition_headers(app, admin_token):
    create(app, admin_token, "cors")
    resp = app.options(f"{WIDGETS}/cors", headers={
        "Origin": "https://client.example.org", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type, if-match, if-none-match"},
        status=200)
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"if-match", "if-none-match"} <= allowed
    got = get(app, admin_token, "cors", Origin="https://client.example.org")
    exposed = {h.strip() for h in got.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ETag", "Retry-After"} <= exposed
