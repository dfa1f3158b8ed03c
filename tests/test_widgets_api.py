"""The widget part of docs/API.md (§2–§5) through the whole WSGI app (WebTest), on real
PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from tests.helpers import (
    ADMIN_REALM,
    API,
    MISSING,
    NOT_ADMIN,
    PASSWORD,
    WIDGETS,
    bearer,
    challenge,
    login,
)
from widgetsvc.db import SQL_DIR, load_queries

FUTURE = "2099-11-28"
FUTURE_SHOWN = "11/28/99 11:59:59 PM UTC"
URL = "https://www.fakesite.com"

ADMIN_CHALLENGE = challenge(ADMIN_REALM, NOT_ADMIN, error="insufficient_scope")
WIDGET_KEYS = [
    "name", "info_url", "created_at", "created_at_iso8601", "created_at_rfc822", "deadline",
    "deadline_passed", "time_remaining", "owner", "link",
]
PAGE_KEYS = [
    "links", "has_prev", "has_next", "page", "total_pages", "items_per_page", "total_items",
    "items",
]
DATE_RE = re.compile(r"^\d\d/\d\d/\d\d (0[1-9]|1[0-2]):[0-5]\d:[0-5]\d (AM|PM) UTC$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
RFC822_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d -0000$"
)
BODY_KINDS = ["json", "form"]


def invalid_name(value: str) -> str:
    return (
        f"'{value}' contains one or more invalid characters. Widget name must contain only "
        "letters, numbers, hyphen and underscore characters."
    )


def unparseable(value: str) -> str:
    return (
        f"Failed to parse '{value}' as a valid date. You can use any format recognized by "
        "dateutil.parser. For example, all of the strings below are valid ways to represent "
        "the same date: '2018-5-13' -or- '05/13/2018' -or- 'May 13 2018'."
    )


def validation(**errors: str) -> dict:
    return {"message": "Input payload validation failed", "errors": errors}


def send(app, method: str, url: str, body: dict, kind: str, **kwargs):
    """The same body as JSON or as an url-encoded form (what a tutorial client sends)."""
    if kind == "json":
        return getattr(app, f"{method}_json")(url, body, **kwargs)
    return getattr(app, method)(url, body, **kwargs)


def widget(name: str, info_url: str = URL, deadline: str = FUTURE) -> dict:
    return {"name": name, "info_url": info_url, "deadline": deadline}


def create(app, token: str, name: str, **fields: str):
    return app.post_json(WIDGETS, widget(name, **fields), headers=bearer(token), status=201)


def set_admin(db, email: str, admin: bool) -> None:
    query = load_queries(SQL_DIR / "testing")["widgets_set_user_admin"]
    with db.pool.connection() as conn:
        conn.execute(query, {"email": email, "admin": admin})


def parse_link_header(value: str) -> list[tuple[str, str]]:
    """[(rel, uri), ...] in header order; the whole header must be made of such parts."""
    part = re.compile(r'<([^>]*)>; rel="([a-z]+)"')
    parts = value.split(", ")
    parsed = []
    for text in parts:
        match = part.fullmatch(text)
        assert match, f"bad Link part {text!r} in {value!r}"
        parsed.append((match.group(2), match.group(1)))
    return parsed


@pytest.fixture
def other_admin_token(app, users) -> str:
    users.create("other-admin@example.com", PASSWORD, admin=True)
    return login(app, "other-admin@example.com")


def public_id(app, token: str) -> str:
    return app.get(f"{API}/auth/user", headers=bearer(token)).json["public_id"]


# -- create ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", BODY_KINDS)
def test_create_answers_201_with_message_and_absolute_location(app, admin_token, kind):
    resp = send(app, "post", WIDGETS, widget("My-Widget_1"), kind,
                headers={**bearer(admin_token), "Host": "localhost:8080"}, status=201)
    assert resp.json == {"status": "success", "message": "New widget added: my-widget_1."}
    assert resp.headers["Location"] == "http://localhost:8080/api/v1/widgets/my-widget_1"
    assert resp.content_type == "application/json"


def test_location_is_built_from_the_request_host(app, admin_token):
    resp = app.post_json(WIDGETS, widget("hosted"),
                         headers={**bearer(admin_token), "Host": "127.0.0.1:8443"},
                         status=201)
    assert resp.headers["Location"] == "http://127.0.0.1:8443/api/v1/widgets/hosted"


def test_get_widget_body_keys_order_and_formats(app, admin_token):
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    create(app, admin_token, "WA06ef7", deadline=FUTURE)
    after = datetime.now(UTC) + timedelta(seconds=2)
    body = app.get(f"{WIDGETS}/wa06ef7", headers=bearer(admin_token), status=200).json

    assert list(body.keys()) == WIDGET_KEYS
    assert body["name"] == "wa06ef7"
    assert body["info_url"] == URL
    assert DATE_RE.match(body["created_at"]), body["created_at"]
    assert ISO_RE.match(body["created_at_iso8601"]), body["created_at_iso8601"]
    assert RFC822_RE.match(body["created_at_rfc822"]), body["created_at_rfc822"]
    # The three formats name the same instant, in UTC, around the time of the request.
    c1 = datetime.strptime(body["created_at"], "%m/%d/%y %I:%M:%S %p UTC").replace(tzinfo=UTC)
    c2 = datetime.fromisoformat(body["created_at_iso8601"]).replace(tzinfo=UTC)
    c3 = datetime.strptime(body["created_at_rfc822"], "%a, %d %b %Y %H:%M:%S -0000").replace(
        tzinfo=UTC)
    assert c1 == c2 == c3
    assert before <= c1 <= after
    assert body["deadline"] == FUTURE_SHOWN
    assert body["deadline_passed"] is False
    assert re.fullmatch(r"\d+ days \d+ hours? \d+ minutes? \d+ seconds?", body["time_remaining"])
    assert body["owner"] == {"email": "admin@example.com", "public_id": public_id(app, admin_token)}
    assert list(body["owner"].keys()) == ["email", "public_id"]
    assert body["link"] == "/api/v1/widgets/wa06ef7"


def test_get_widget_needs_only_a_user_token(app, admin_token, user_token):
    create(app, admin_token, "visible")
    body = app.get(f"{WIDGETS}/visible", headers=bearer(user_token), status=200).json
    assert body["name"] == "visible"


@pytest.mark.parametrize("path_name", ["mixed-case", "MIXED-CASE", "Mixed-Case", "mIxEd-CaSe"])
def test_lookup_by_any_case(app, admin_token, path_name):
    create(app, admin_token, "Mixed-Case")
    body = app.get(f"{WIDGETS}/{path_name}", headers=bearer(admin_token)).json
    assert body["name"] == "mixed-case"
    assert body["link"] == "/api/v1/widgets/mixed-case"


@pytest.mark.parametrize("kind", BODY_KINDS)
def test_a_name_is_checked_as_sent_then_lower_cased(app, admin_token, kind):
    """"İ" is a letter; lower-cased it is "i" plus a combining dot, which is not: checked
    first, it is accepted, then stored, quoted and found lower-cased."""
    stored = "i\u0307-widget"
    resp = send(app, "post", WIDGETS, widget("İ-Widget"), kind, headers=bearer(admin_token),
                status=201)
    assert resp.json["message"] == f"New widget added: {stored}."
    assert resp.headers["Location"].endswith(f"{WIDGETS}/i%CC%87-widget")
    for path in ("%C4%B0-Widget", "i%CC%87-widget", "I%CC%87-WIDGET"):
        body = app.get(f"{WIDGETS}/{path}", headers=bearer(admin_token), status=200).json
        assert body["name"] == stored and body["link"] == f"{WIDGETS}/i%CC%87-widget"
    resp = send(app, "put", f"{WIDGETS}/%C4%B0-WIDGET", widget("ignored"), kind,
                headers=bearer(admin_token), status=200)
    assert resp.json["message"] == f"'{stored}' was successfully updated"
    # the combining dot sent as such is no name: PUT refuses it, quoting it lower-cased
    resp = send(app, "put", f"{WIDGETS}/I%CC%87-X", widget("ignored"), kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(name=invalid_name("i\u0307-x"))
    app.delete(f"{WIDGETS}/%C4%B0-widget", headers=bearer(admin_token), status=204)


@pytest.mark.parametrize("method", ["post", "put"])
def test_a_name_that_lower_cases_past_100_characters_is_too_long(app, admin_token, method):
    """51 "İ" are 51 characters as sent but 102 stored: a 400, never the table's CHECK (500)."""
    name = "İ" * 51
    if method == "post":
        resp = app.post_json(WIDGETS, widget(name), headers=bearer(admin_token), status=400)
    else:
        resp = app.put_json(f"{WIDGETS}/{quote(name)}", widget("ignored"),
                            headers=bearer(admin_token), status=400)
    assert resp.json == validation(name="Widget name must be at most 100 characters.")
    ok = app.post_json(WIDGETS, widget("İ" * 50), headers=bearer(admin_token), status=201)
    assert ok.json["message"] == "New widget added: " + "i\u0307" * 50 + "."  # 100 stored


@pytest.mark.parametrize("kind", BODY_KINDS)
def test_duplicate_name_in_another_case_is_409(app, admin_token, kind):
    create(app, admin_token, "dup-Name")
    resp = send(app, "post", WIDGETS, widget("DUP-name"), kind, headers=bearer(admin_token),
                status=409)
    assert resp.json == {
        "status": "fail", "message": "Widget name: dup-name already exists, must be unique."
    }
    assert "Location" not in resp.headers
    total = app.get(WIDGETS, headers=bearer(admin_token)).json["total_items"]
    assert total == 1


def test_unknown_widget_is_404_quoting_the_lower_cased_name(app, user_token):
    resp = app.get(f"{WIDGETS}/No-Such-Widget", headers=bearer(user_token), status=404)
    assert resp.json == {"status": "fail", "message": "no-such-widget not found in database."}


# -- update ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", BODY_KINDS)
def test_put_existing_updates_and_keeps_owner(app, admin_token, other_admin_token, kind):
    create(app, admin_token, "upd")
    original = app.get(f"{WIDGETS}/upd", headers=bearer(admin_token)).json
    resp = send(app, "put", f"{WIDGETS}/UPD",
                {"name": "Other name!", "info_url": "http://example.org/new",
                 "deadline": "2098-01-02"},
                kind, headers=bearer(other_admin_token), status=200)
    assert resp.json == {"status": "success", "message": "'upd' was successfully updated"}
    assert "Location" not in resp.headers

    body = app.get(f"{WIDGETS}/upd", headers=bearer(admin_token)).json
    assert body["name"] == "upd"
    assert body["info_url"] == "http://example.org/new"
    assert body["deadline"] == "01/02/98 11:59:59 PM UTC"
    assert body["owner"] == original["owner"]
    assert body["owner"]["email"] == "admin@example.com"
    assert body["created_at_iso8601"] == original["created_at_iso8601"]
    # The body's name was ignored: nothing of that name exists, and nothing was added.
    app.get(f"{WIDGETS}/other-name", headers=bearer(admin_token), status=404)
    assert app.get(WIDGETS, headers=bearer(admin_token)).json["total_items"] == 1


@pytest.mark.parametrize("kind", BODY_KINDS)
def test_put_missing_creates_it_owned_by_the_caller(app, admin_token, other_admin_token, kind):
    create(app, admin_token, "someone-elses")
    resp = send(app, "put", f"{WIDGETS}/New-One", {"info_url": URL, "deadline": FUTURE}, kind,
                headers={**bearer(other_admin_token), "Host": "localhost:8080"},
                status=201)
    assert resp.json == {"status": "success", "message": "New widget added: new-one."}
    assert resp.headers["Location"] == "http://localhost:8080/api/v1/widgets/new-one"
    body = app.get(f"{WIDGETS}/new-one", headers=bearer(admin_token)).json
    assert body["name"] == "new-one"
    assert body["owner"] == {
        "email": "other-admin@example.com", "public_id": public_id(app, other_admin_token)
    }
    assert body["deadline"] == FUTURE_SHOWN


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("bad%20name", invalid_name("bad name")),
        ("Bad.Name", invalid_name("bad.name")),
        ("a" * 101, "Widget name must be at most 100 characters."),
    ],
)
@pytest.mark.parametrize("kind", BODY_KINDS)
def test_put_with_an_invalid_path_name_is_400(app, admin_token, kind, path, message):
    resp = send(app, "put", f"{WIDGETS}/{path}", {"info_url": URL, "deadline": FUTURE}, kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(name=message)
    assert app.get(WIDGETS, headers=bearer(admin_token)).json["total_items"] == 0


def test_put_with_an_invalid_path_name_bundles_body_errors(app, admin_token):
    resp = app.put_json(f"{WIDGETS}/bad.name", {"info_url": "nope"},
                        headers=bearer(admin_token), status=400)
    assert resp.json == validation(
        deadline=MISSING, info_url="nope is not a valid URL", name=invalid_name("bad.name"),
    )


@pytest.mark.parametrize("kind", BODY_KINDS)
def test_put_missing_fields(app, admin_token, kind):
    create(app, admin_token, "present")
    resp = send(app, "put", f"{WIDGETS}/present", {"name": "present"}, kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(deadline=MISSING, info_url=MISSING)


def test_put_name_of_100_chars_is_accepted(app, admin_token):
    name = "n" * 100
    resp = app.put_json(f"{WIDGETS}/{name}", {"info_url": URL, "deadline": FUTURE},
                        headers=bearer(admin_token), status=201)
    assert resp.json["message"] == f"New widget added: {name}."


# -- delete ---------------------------------------------------------------------------------

def test_delete_then_gone(app, admin_token):
    create(app, admin_token, "doomed")
    resp = app.delete(f"{WIDGETS}/DOOMED", headers=bearer(admin_token), status=204)
    assert resp.body == b""
    resp = app.get(f"{WIDGETS}/doomed", headers=bearer(admin_token), status=404)
    assert resp.json == {"status": "fail", "message": "doomed not found in database."}
    resp = app.delete(f"{WIDGETS}/Doomed", headers=bearer(admin_token), status=404)
    assert resp.json == {"status": "fail", "message": "doomed not found in database."}
    listing = app.get(WIDGETS, headers=bearer(admin_token))
    assert listing.json["total_items"] == 0
    assert listing.headers["Total-Count"] == "0"


def test_delete_leaves_other_widgets(app, admin_token):
    for name in ("keep-1", "gone", "keep-2"):
        create(app, admin_token, name)
    app.delete(f"{WIDGETS}/gone", headers=bearer(admin_token), status=204)
    items = app.get(WIDGETS, headers=bearer(admin_token)).json["items"]
    assert [item["name"] for item in items] == ["keep-1", "keep-2"]


# -- input rules (§3) -----------------------------------------------------------------------

def _long_url(length: int) -> str:
    prefix = "https://fakesite.com/"
    return prefix + "p" * (length - len(prefix))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bad name", invalid_name("bad name")),
        ("Bad.Name", invalid_name("bad.name")),
        ("Bad Name", invalid_name("bad name")),
        ("slash/name", invalid_name("slash/name")),
        ("", invalid_name("")),
        ("a" * 101, "Widget name must be at most 100 characters."),
        ("A" * 101, "Widget name must be at most 100 characters."),
    ],
)
@pytest.mark.parametrize("kind", BODY_KINDS)
def test_bad_name(app, admin_token, kind, value, message):
    resp = send(app, "post", WIDGETS, widget(value), kind, headers=bearer(admin_token),
                status=400)
    assert resp.json == validation(name=message)


@pytest.mark.parametrize("value", ["a", "n" * 100, "under_score-and-hyphen-09", "ÉtÉ"])
def test_good_name(app, admin_token, value):
    resp = app.post_json(WIDGETS, widget(value), headers=bearer(admin_token), status=201)
    assert resp.json["message"] == f"New widget added: {value.lower()}."


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("www.fakesite.com",
         "www.fakesite.com is not a valid URL. Did you mean: http://www.fakesite.com"),
        ("fakesite.com/path",
         "fakesite.com/path is not a valid URL. Did you mean: http://fakesite.com/path"),
        ("ftp://fakesite.com", "ftp://fakesite.com is not a valid URL. Protocol is not allowed"),
        ("javascript://fakesite.com/x",
         "javascript://fakesite.com/x is not a valid URL. Protocol is not allowed"),
        ("http://192.168.1.1/x", "http://192.168.1.1/x is not a valid URL. IP is not allowed"),
        ("https://8.8.8.8", "https://8.8.8.8 is not a valid URL. IP is not allowed"),
        ("http://[::1]/", "http://[::1]/ is not a valid URL. IP is not allowed"),
        ("http://[2001:db8::1]/x", "http://[2001:db8::1]/x is not a valid URL. IP is not allowed"),
        ("http://localhost/x", "http://localhost/x is not a valid URL. Localhost is not allowed"),
        ("http://LOCALHOST", "http://LOCALHOST is not a valid URL. Localhost is not allowed"),
        ("https://www.fakesite.com:8080",
         "https://www.fakesite.com:8080 is not a valid URL. Custom port is not allowed"),
        ("https://www.fakesite.com:443/x",
         "https://www.fakesite.com:443/x is not a valid URL. Custom port is not allowed"),
        ("http://user:pw@fakesite.com",
         "http://user:pw@fakesite.com is not a valid URL. Authentication is not allowed"),
        ("https://user@fakesite.com/",
         "https://user@fakesite.com/ is not a valid URL. Authentication is not allowed"),
        ("not a url", "not a url is not a valid URL"),
        ("http://", "http:// is not a valid URL"),
        ("http://nodot", "http://nodot is not a valid URL"),
        ("", " is not a valid URL"),
        (_long_url(256), f"{_long_url(256)} is not a valid URL"),
    ],
)
@pytest.mark.parametrize("kind", BODY_KINDS)
def test_bad_info_url(app, admin_token, kind, value, message):
    resp = send(app, "post", WIDGETS, widget("w", info_url=value), kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(info_url=message)


@pytest.mark.parametrize(
    "value", ["http://fakesite.com", "https://www.fakesite.com/a/b?c=d#e", _long_url(255),
              "HTTPS://WWW.FAKESITE.COM"],
)
def test_good_info_url(app, admin_token, value):
    app.post_json(WIDGETS, widget("w", info_url=value), headers=bearer(admin_token), status=201)
    assert app.get(f"{WIDGETS}/w", headers=bearer(admin_token)).json["info_url"] == value


@pytest.mark.parametrize("value", ["banana", "2026-13-45", "31/31/2031", "not a date at all"])
@pytest.mark.parametrize("kind", BODY_KINDS)
def test_unparseable_deadline(app, admin_token, kind, value):
    resp = send(app, "post", WIDGETS, widget("w", deadline=value), kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(deadline=unparseable(value))


@pytest.mark.parametrize(
    ("value", "shown"),
    [("2020-01-01", "Jan 01 2020"), ("05/13/2018", "May 13 2018"), ("Feb 3 1999", "Feb 03 1999")],
)
@pytest.mark.parametrize("kind", BODY_KINDS)
def test_past_deadline(app, admin_token, kind, value, shown):
    today = datetime.now(UTC).strftime("%b %d %Y")
    resp = send(app, "post", WIDGETS, widget("w", deadline=value), kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(deadline=(
        f"Successfully parsed {value} as {shown}. However, this value must be a date in the "
        f"future and {shown} is BEFORE {today}"
    ))


def test_yesterday_is_past(app, admin_token):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    value = yesterday.isoformat()
    resp = app.post_json(WIDGETS, widget("w", deadline=value), headers=bearer(admin_token),
                         status=400)
    assert resp.json["errors"]["deadline"].startswith(
        f"Successfully parsed {value} as {yesterday:%b %d %Y}. However")


@pytest.mark.parametrize("kind", BODY_KINDS)
def test_today_is_accepted(app, admin_token, kind):
    today = datetime.now(UTC).date()
    send(app, "post", WIDGETS, widget("today", deadline=today.isoformat()), kind,
         headers=bearer(admin_token), status=201)
    body = app.get(f"{WIDGETS}/today", headers=bearer(admin_token)).json
    assert body["deadline"] == f"{today:%m/%d/%y} 11:59:59 PM UTC"
    assert body["deadline_passed"] is False


@pytest.mark.parametrize(
    "value",
    ["2031-11-28", "11/28/2031", "Nov 28 2031", "28 November 2031", "November 28, 2031",
     "2031-11-28T08:15:00", "2031/11/28", "Fri Nov 28 2031"],
)
@pytest.mark.parametrize("kind", BODY_KINDS)
def test_dateutil_formats_accepted(app, admin_token, kind, value):
    send(app, "post", WIDGETS, widget("dated", deadline=value), kind,
         headers=bearer(admin_token), status=201)
    body = app.get(f"{WIDGETS}/dated", headers=bearer(admin_token)).json
    assert body["deadline"] == "11/28/31 11:59:59 PM UTC"


@pytest.mark.parametrize("kind", BODY_KINDS)
def test_missing_fields(app, admin_token, kind):
    resp = send(app, "post", WIDGETS, {}, kind, headers=bearer(admin_token), status=400)
    assert resp.json == validation(deadline=MISSING, info_url=MISSING, name=MISSING)
    resp = send(app, "post", WIDGETS, {"name": "only-name"}, kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(deadline=MISSING, info_url=MISSING)


def test_multipart_form_body(app, admin_token):
    resp = app.post(WIDGETS, widget("Multi"), content_type="multipart/form-data",
                    headers=bearer(admin_token), status=201)
    assert resp.json == {"status": "success", "message": "New widget added: multi."}
    resp = app.post(WIDGETS, {"name": "bad name"}, content_type="multipart/form-data",
                    headers=bearer(admin_token), status=400)
    assert resp.json == validation(
        deadline=MISSING, info_url=MISSING, name=invalid_name("bad name"))


def test_wrong_method_is_405_json(app, admin_token):
    resp = app.request(f"{WIDGETS}/x", method="PATCH", headers=bearer(admin_token), status=405)
    assert resp.content_type == "application/json"
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "PUT", "DELETE"}
    resp = app.request(WIDGETS, method="DELETE", headers=bearer(admin_token), status=405)
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_no_body_at_all_is_missing_fields(app, admin_token):
    resp = app.post(WIDGETS, headers=bearer(admin_token), status=400)
    assert resp.json == validation(deadline=MISSING, info_url=MISSING, name=MISSING)


@pytest.mark.parametrize("kind", BODY_KINDS)
def test_all_errors_in_one_400(app, admin_token, kind):
    resp = send(app, "post", WIDGETS,
                widget("Bad Name", info_url="ftp://x.com", deadline="banana"), kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(
        deadline=unparseable("banana"),
        info_url="ftp://x.com is not a valid URL. Protocol is not allowed",
        name=invalid_name("bad name"),
    )
    assert app.get(WIDGETS, headers=bearer(admin_token)).json["total_items"] == 0


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("page=abc", {"page": "abc is not a valid integer"}),
        ("page=1.5", {"page": "1.5 is not a valid integer"}),
        ("page=", {"page": " is not a valid integer"}),
        ("page=0", {"page": "Invalid page: 0. page must be a positive integer"}),
        ("page=-2", {"page": "Invalid page: -2. page must be a positive integer"}),
        ("per_page=abc", {"per_page": "abc is not a valid integer"}),
        ("per_page=0", {"per_page": "Invalid per_page: 0. per_page must be a positive integer"}),
        ("per_page=-5",
         {"per_page": "Invalid per_page: -5. per_page must be a positive integer"}),
        ("per_page=7", {"per_page": "The value '7' is not a valid choice for 'per_page'."}),
        ("per_page=1000",
         {"per_page": "The value '1000' is not a valid choice for 'per_page'."}),
        ("page=1%0A", {"page": "1\n is not a valid integer"}),
        ("page=%201", {"page": " 1 is not a valid integer"}),
        ("per_page=5%0A", {"per_page": "5\n is not a valid integer"}),
        ("per_page=05", {"per_page": "The value '05' is not a valid choice for 'per_page'."}),
        ("per_page=%2B10",
         {"per_page": "The value '+10' is not a valid choice for 'per_page'."}),
        ("page=x&per_page=3", {"page": "x is not a valid integer",
                               "per_page": "The value '3' is not a valid choice for 'per_page'."}),
    ],
)
def test_bad_pagination_query(app, user_token, query, errors):
    resp = app.get(f"{WIDGETS}?{query}", headers=bearer(user_token), status=400)
    assert resp.json == validation(**errors)


@pytest.mark.parametrize("per_page", [5, 10, 25, 50, 100])
def test_every_per_page_choice(app, user_token, per_page):
    body = app.get(f"{WIDGETS}?per_page={per_page}", headers=bearer(user_token)).json
    assert body["items_per_page"] == per_page
    assert body["links"]["self"] == f"/api/v1/widgets?page=1&per_page={per_page}"


# -- order of checks ------------------------------------------------------------------------

BAD_BODY = {"name": "bad name", "info_url": "nope", "deadline": "banana"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", WIDGETS), ("put", f"{WIDGETS}/bad.name"), ("put", f"{WIDGETS}/missing")],
)
@pytest.mark.parametrize("kind", BODY_KINDS)
def test_no_token_is_401_even_with_a_bad_body(app, kind, method, path):
    resp = send(app, method, path, BAD_BODY, kind, status=401)
    assert resp.json == {"message": "Unauthorized"}
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="admin_users@mydomain.com"'


def test_no_token_on_reads_and_delete(app, admin_token):
    create(app, admin_token, "exists")
    for method, path, realm in [
        ("get", WIDGETS, "registered_users@mydomain.com"),
        ("get", f"{WIDGETS}?page=0", "registered_users@mydomain.com"),
        ("get", f"{WIDGETS}/exists", "registered_users@mydomain.com"),
        ("get", f"{WIDGETS}/missing", "registered_users@mydomain.com"),
        ("delete", f"{WIDGETS}/exists", "admin_users@mydomain.com"),
        ("delete", f"{WIDGETS}/missing", "admin_users@mydomain.com"),
    ]:
        resp = getattr(app, method)(path, status=401)
        assert resp.json == {"message": "Unauthorized"}, (method, path)
        assert resp.headers["WWW-Authenticate"] == f'Bearer realm="{realm}"', (method, path)
    app.get(f"{WIDGETS}/exists", headers=bearer(admin_token), status=200)


def test_bad_token_is_401_before_validation(app):
    resp = app.post_json(WIDGETS, BAD_BODY, headers=bearer("not.a.jwt"), status=401)
    assert resp.json == {"message": "Invalid token. Please log in again."}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", WIDGETS, BAD_BODY),
        ("post", WIDGETS, widget("fine")),
        ("post", WIDGETS, widget("taken")),
        ("put", f"{WIDGETS}/bad.name", BAD_BODY),
        ("put", f"{WIDGETS}/taken", {"info_url": URL, "deadline": FUTURE}),
        ("put", f"{WIDGETS}/missing", {"info_url": URL, "deadline": FUTURE}),
    ],
)
@pytest.mark.parametrize("kind", BODY_KINDS)
def test_user_token_is_403_before_validation(app, admin_token, user_token, kind, method,
                                             path, body):
    create(app, admin_token, "taken")
    resp = send(app, method, path, body, kind, headers=bearer(user_token), status=403)
    assert resp.json == {"message": NOT_ADMIN}
    assert resp.headers["WWW-Authenticate"] == ADMIN_CHALLENGE
    names = [item["name"] for item in app.get(WIDGETS, headers=bearer(user_token)).json["items"]]
    assert names == ["taken"]
    assert app.get(f"{WIDGETS}/taken", headers=bearer(user_token)).json["info_url"] == URL


@pytest.mark.parametrize("name", ["taken", "missing"])
def test_user_token_delete_is_403(app, admin_token, user_token, name):
    create(app, admin_token, "taken")
    resp = app.delete(f"{WIDGETS}/{name}", headers=bearer(user_token), status=403)
    assert resp.json == {"message": NOT_ADMIN}
    assert resp.headers["WWW-Authenticate"] == ADMIN_CHALLENGE
    app.get(f"{WIDGETS}/taken", headers=bearer(user_token), status=200)


@pytest.mark.parametrize("kind", BODY_KINDS)
def test_validation_comes_before_conflict(app, admin_token, kind):
    create(app, admin_token, "taken")
    resp = send(app, "post", WIDGETS, widget("TAKEN", info_url="nope"), kind,
                headers=bearer(admin_token), status=400)
    assert resp.json == validation(info_url="nope is not a valid URL")


def test_demoted_admin_is_refused_with_the_old_token(app, users, db, admin_token):
    create(app, admin_token, "before-demotion")
    set_admin(db, "ADMIN@example.com", False)
    resp = app.post_json(WIDGETS, widget("after"), headers=bearer(admin_token), status=403)
    assert resp.json == {"message": NOT_ADMIN}
    assert resp.headers["WWW-Authenticate"] == ADMIN_CHALLENGE
    resp = app.put_json(f"{WIDGETS}/before-demotion", {"info_url": URL, "deadline": FUTURE},
                        headers=bearer(admin_token), status=403)
    assert resp.json == {"message": NOT_ADMIN}
    resp = app.delete(f"{WIDGETS}/before-demotion", headers=bearer(admin_token), status=403)
    assert resp.json == {"message": NOT_ADMIN}
    # Still a valid user: reads work.
    app.get(f"{WIDGETS}/before-demotion", headers=bearer(admin_token), status=200)
    assert app.get(f"{API}/auth/user", headers=bearer(admin_token)).json["admin"] is False


def test_promoted_user_is_admin_with_the_old_token(app, db, user_token):
    """The token's admin=false claim is not trusted either: the database decides."""
    app.post_json(WIDGETS, widget("nope"), headers=bearer(user_token), status=403)
    set_admin(db, "user@example.com", True)
    resp = app.post_json(WIDGETS, widget("yes"), headers=bearer(user_token), status=201)
    assert resp.json["message"] == "New widget added: yes."


# -- pagination -----------------------------------------------------------------------------

def make_widgets(app, token: str, count: int, prefix: str = "w") -> list[str]:
    names = [f"{prefix}{i:02d}" for i in range(count)]
    for name in names:
        create(app, token, name)
    return names


def test_empty_collection(app, user_token):
    resp = app.get(WIDGETS, headers=bearer(user_token), status=200)
    body = resp.json
    assert list(body.keys()) == PAGE_KEYS
    assert body == {
        "links": {"self": "/api/v1/widgets?page=1&per_page=10",
                  "first": "/api/v1/widgets?page=1&per_page=10",
                  "last": "/api/v1/widgets?page=1&per_page=10"},
        "has_prev": False, "has_next": False, "page": 1, "total_pages": 0,
        "items_per_page": 10, "total_items": 0, "items": [],
    }
    assert list(body["links"].keys()) == ["self", "first", "last"]
    assert resp.headers["Total-Count"] == "0"
    assert parse_link_header(resp.headers["Link"]) == list(body["links"].items())


def test_defaults_page_1_per_page_10(app, admin_token, user_token):
    names = make_widgets(app, admin_token, 12)
    body = app.get(WIDGETS, headers=bearer(user_token)).json
    assert body["page"] == 1
    assert body["items_per_page"] == 10
    assert body["total_pages"] == 2
    assert body["total_items"] == 12
    assert [item["name"] for item in body["items"]] == names[:10]
    assert list(body["links"].keys()) == ["self", "first", "next", "last"]
    assert body["links"]["next"] == "/api/v1/widgets?page=2&per_page=10"


def test_the_contract_example(app, admin_token, user_token):
    names = make_widgets(app, admin_token, 22)
    resp = app.get(f"{WIDGETS}?page=2&per_page=5", headers=bearer(user_token), status=200)
    body = resp.json
    assert list(body.keys()) == PAGE_KEYS
    assert list(body["links"].items()) == [
        ("self", "/api/v1/widgets?page=2&per_page=5"),
        ("first", "/api/v1/widgets?page=1&per_page=5"),
        ("prev", "/api/v1/widgets?page=1&per_page=5"),
        ("next", "/api/v1/widgets?page=3&per_page=5"),
        ("last", "/api/v1/widgets?page=5&per_page=5"),
    ]
    assert body["has_prev"] is True
    assert body["has_next"] is True
    assert body["page"] == 2
    assert body["total_pages"] == 5
    assert body["items_per_page"] == 5
    assert body["total_items"] == 22
    assert [item["name"] for item in body["items"]] == names[5:10]
    for item in body["items"]:
        assert list(item.keys()) == WIDGET_KEYS
        assert item["owner"]["email"] == "admin@example.com"
    assert resp.headers["Total-Count"] == "22"
    assert resp.headers["Link"] == (
        '</api/v1/widgets?page=2&per_page=5>; rel="self", '
        '</api/v1/widgets?page=1&per_page=5>; rel="first", '
        '</api/v1/widgets?page=1&per_page=5>; rel="prev", '
        '</api/v1/widgets?page=3&per_page=5>; rel="next", '
        '</api/v1/widgets?page=5&per_page=5>; rel="last"'
    )


@pytest.mark.parametrize(
    ("page", "rels", "count"),
    [
        (1, ["self", "first", "next", "last"], 5),
        (3, ["self", "first", "prev", "next", "last"], 5),
        (5, ["self", "first", "prev", "last"], 2),
    ],
)
def test_prev_and_next_absent_when_not_applicable(app, admin_token, page, rels, count):
    make_widgets(app, admin_token, 22)
    resp = app.get(f"{WIDGETS}?page={page}&per_page=5", headers=bearer(admin_token))
    body = resp.json
    assert list(body["links"].keys()) == rels
    assert None not in body["links"].values()
    assert body["has_prev"] is ("prev" in rels)
    assert body["has_next"] is ("next" in rels)
    assert len(body["items"]) == count
    assert parse_link_header(resp.headers["Link"]) == list(body["links"].items())
    assert resp.headers["Total-Count"] == "22"


def test_single_full_page_has_no_next(app, admin_token):
    make_widgets(app, admin_token, 5)
    body = app.get(f"{WIDGETS}?per_page=5", headers=bearer(admin_token)).json
    assert body["total_pages"] == 1
    assert body["has_next"] is False
    assert list(body["links"].keys()) == ["self", "first", "last"]
    assert body["links"]["last"] == "/api/v1/widgets?page=1&per_page=5"


@pytest.mark.parametrize("page", [6, 7, 1000, 10**30])
def test_page_past_the_end(app, admin_token, page):
    make_widgets(app, admin_token, 22)
    resp = app.get(f"{WIDGETS}?page={page}&per_page=5", headers=bearer(admin_token), status=200)
    body = resp.json
    assert body["items"] == []
    assert body["has_next"] is False
    assert body["has_prev"] is True
    assert body["page"] == page
    assert body["total_pages"] == 5
    assert body["total_items"] == 22
    assert list(body["links"].items()) == [
        ("self", f"/api/v1/widgets?page={page}&per_page=5"),
        ("first", "/api/v1/widgets?page=1&per_page=5"),
        ("prev", f"/api/v1/widgets?page={page - 1}&per_page=5"),
        ("last", "/api/v1/widgets?page=5&per_page=5"),
    ]
    assert parse_link_header(resp.headers["Link"]) == list(body["links"].items())


def test_page_past_the_end_of_an_empty_collection(app, user_token):
    resp = app.get(f"{WIDGETS}?page=3", headers=bearer(user_token), status=200)
    assert resp.json["items"] == []
    assert list(resp.json["links"].items()) == [
        ("self", "/api/v1/widgets?page=3&per_page=10"),
        ("first", "/api/v1/widgets?page=1&per_page=10"),
        ("prev", "/api/v1/widgets?page=2&per_page=10"),
        ("last", "/api/v1/widgets?page=1&per_page=10"),
    ]


def test_items_in_creation_order_stable_across_updates(app, admin_token):
    names = ["zulu", "alpha", "mike", "bravo"]
    for name in names:
        create(app, admin_token, name)
    for name in ("zulu", "mike", "alpha"):
        app.put_json(f"{WIDGETS}/{name}", {"info_url": "http://example.org", "deadline": FUTURE},
                     headers=bearer(admin_token), status=200)
    items = app.get(WIDGETS, headers=bearer(admin_token)).json["items"]
    assert [item["name"] for item in items] == names
    assert [item["info_url"] for item in items] == [
        "http://example.org", "http://example.org", "http://example.org", URL,
    ]


def test_list_item_equals_item_body(app, admin_token):
    create(app, admin_token, "same")
    item = app.get(WIDGETS, headers=bearer(admin_token)).json["items"][0]
    body = app.get(f"{WIDGETS}/same", headers=bearer(admin_token)).json
    item.pop("time_remaining")
    body.pop("time_remaining")
    assert item == body


def test_walk_forward_following_next_only(app, admin_token, user_token):
    names = make_widgets(app, admin_token, 23)
    seen: list[str] = []
    url: str | None = f"{WIDGETS}?per_page=5"
    pages = 0
    while url is not None:
        resp = app.get(url, headers=bearer(user_token), status=200)
        body = resp.json
        pages += 1
        assert pages <= 5, "more pages than ceil(23 / 5)"
        assert body["total_items"] == 23
        seen.extend(item["name"] for item in body["items"])
        assert body["has_next"] is ("next" in body["links"])
        url = body["links"].get("next")
    assert pages == 5
    assert seen == names
    assert len(set(seen)) == 23


def test_walk_backward_following_prev_from_last(app, admin_token, user_token):
    names = make_widgets(app, admin_token, 23)
    first = app.get(f"{WIDGETS}?per_page=5", headers=bearer(user_token)).json
    url: str | None = first["links"]["last"]
    pages: list[list[str]] = []
    while url is not None:
        body = app.get(url, headers=bearer(user_token), status=200).json
        pages.append([item["name"] for item in body["items"]])
        assert len(pages) <= 5, "more pages than ceil(23 / 5)"
        assert body["has_prev"] is ("prev" in body["links"])
        url = body["links"].get("prev")
    assert [len(page) for page in pages] == [3, 5, 5, 5, 5]
    seen = [name for page in reversed(pages) for name in page]
    assert seen == names


def test_total_count_follows_creates_and_deletes(app, admin_token):
    make_widgets(app, admin_token, 3)
    assert app.get(WIDGETS, headers=bearer(admin_token)).headers["Total-Count"] == "3"
    app.delete(f"{WIDGETS}/w01", headers=bearer(admin_token), status=204)
    resp = app.get(WIDGETS, headers=bearer(admin_token))
    assert resp.headers["Total-Count"] == "2"
    assert resp.json["total_items"] == 2
    assert [item["name"] for item in resp.json["items"]] == ["w00", "w02"]


def test_first_query_value_wins(app, admin_token):
    make_widgets(app, admin_token, 6)
    body = app.get(f"{WIDGETS}?page=2&page=1&per_page=5&per_page=10",
                   headers=bearer(admin_token)).json
    assert body["page"] == 2
    assert body["items_per_page"] == 5
    assert [item["name"] for item in body["items"]] == ["w05"]

