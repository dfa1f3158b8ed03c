"""Time-dependent parts of the widget contract with a fixed clock, and representation units."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

import pytest
import webtest

from tests.helpers import API, PASSWORD, WIDGETS, bearer, login
from widgetsvc import timefmt
from widgetsvc.app import create_app
from widgetsvc.paging import Page, link_header
from widgetsvc.timefmt import FixedClock

URL = "https://www.fakesite.com"
# Any date ahead of the real one works: only the fixed clock decides "today" for widgets.
DAY = datetime.now(UTC).date() + timedelta(days=40)
DEADLINE = datetime.combine(DAY, time.max, tzinfo=UTC)  # 23:59:59.999999 UTC


def at(moment: datetime):
    return FixedClock(moment)


@pytest.fixture
def admin(app, users) -> str:
    """An admin token issued with the real clock (PyJWT checks exp/iat against real time)."""
    users.create("admin@example.com", PASSWORD, admin=True)
    return login(app, "admin@example.com")


@pytest.fixture
def fixed(config, db):
    """A TestApp factory whose app reads "now" from the given clock."""

    def build(clock: FixedClock, cfg=config) -> webtest.TestApp:
        return webtest.TestApp(create_app(cfg, db=db, clock=clock))

    return build


def add_widget(fixed, admin: str, name: str = "timed", day: date = DAY) -> None:
    """Created while the fixed clock says it is ``day`` at noon, so ``day`` is 'today'."""
    app = fixed(at(datetime.combine(day, time(12), tzinfo=UTC)))
    app.post_json(WIDGETS, {"name": name, "info_url": URL, "deadline": day.isoformat()},
                  headers=bearer(admin), status=201)


def view(fixed, admin: str, now: datetime, name: str = "timed") -> dict:
    return fixed(at(now)).get(f"{WIDGETS}/{name}", headers=bearer(admin)).json


@pytest.mark.parametrize(
    ("remaining", "shown"),
    [
        (timedelta(milliseconds=250), "250 milliseconds"),
        (timedelta(milliseconds=1), "1 millisecond"),
        (timedelta(microseconds=999_999), "999 milliseconds"),
        (timedelta(seconds=1), "1 second 0 milliseconds"),
        (timedelta(seconds=15, milliseconds=250), "15 seconds 250 milliseconds"),
        (timedelta(seconds=1, milliseconds=1), "1 second 1 millisecond"),
        (timedelta(seconds=59, milliseconds=999), "59 seconds 999 milliseconds"),
        (timedelta(minutes=1), "1 minute 0 seconds"),
        (timedelta(minutes=7, seconds=15), "7 minutes 15 seconds"),
        (timedelta(minutes=7, seconds=15, milliseconds=900), "7 minutes 15 seconds"),
        (timedelta(hours=1, seconds=1), "1 hour 0 minutes 1 second"),
        (timedelta(hours=9, minutes=7, seconds=15), "9 hours 7 minutes 15 seconds"),
        (timedelta(days=1), "1 day 0 hours 0 minutes 0 seconds"),
        (timedelta(days=1, hours=1, minutes=1, seconds=1), "1 day 1 hour 1 minute 1 second"),
        (timedelta(days=3, hours=9, minutes=7, seconds=22), "3 days 9 hours 7 minutes 22 seconds"),
        (timedelta(days=39, hours=11, minutes=59, seconds=59, microseconds=999_999),
         "39 days 11 hours 59 minutes 59 seconds"),
    ],
)
def test_time_remaining(fixed, admin, remaining, shown):
    add_widget(fixed, admin)
    body = view(fixed, admin, DEADLINE - remaining)
    assert body["time_remaining"] == shown
    assert body["deadline_passed"] is False
    assert body["deadline"] == f"{DAY:%m/%d/%y} 11:59:59 PM UTC"


def test_deadline_day_just_before_midnight(fixed, admin):
    add_widget(fixed, admin)
    now = datetime.combine(DAY, time(23, 59, 59, 749_999), tzinfo=UTC)
    body = view(fixed, admin, now)
    assert body["time_remaining"] == "250 milliseconds"
    assert body["deadline_passed"] is False


def test_exactly_one_day_before_the_deadline_instant(fixed, admin):
    add_widget(fixed, admin)
    body = view(fixed, admin, DEADLINE - timedelta(days=1))
    assert body["time_remaining"] == "1 day 0 hours 0 minutes 0 seconds"


@pytest.mark.parametrize(
    "after", [timedelta(microseconds=1), timedelta(seconds=1), timedelta(days=400)],
)
def test_after_the_deadline(fixed, admin, after):
    add_widget(fixed, admin)
    body = view(fixed, admin, DEADLINE + after)
    assert body["time_remaining"] == "No time remaining"
    assert body["deadline_passed"] is True
    listing = fixed(at(DEADLINE + after)).get(WIDGETS, headers=bearer(admin)).json
    assert listing["items"][0]["deadline_passed"] is True
    assert listing["items"][0]["time_remaining"] == "No time remaining"


def test_list_uses_the_same_clock(fixed, admin):
    add_widget(fixed, admin, "a")
    add_widget(fixed, admin, "b", DAY + timedelta(days=1))
    now = DEADLINE - timedelta(hours=2)
    items = fixed(at(now)).get(WIDGETS, headers=bearer(admin)).json["items"]
    assert [(i["name"], i["time_remaining"], i["deadline_passed"]) for i in items] == [
        ("a", "2 hours 0 minutes 0 seconds", False),
        ("b", "1 day 2 hours 0 minutes 0 seconds", False),
    ]


# -- the past-deadline check follows the clock ----------------------------------------------

@pytest.mark.parametrize(
    "now",
    [
        datetime.combine(DAY, time(0), tzinfo=UTC),
        datetime.combine(DAY, time(12), tzinfo=UTC),
        DEADLINE,
    ],
)
def test_deadline_today_is_accepted_all_day(fixed, admin, now):
    app = fixed(at(now))
    app.post_json(WIDGETS, {"name": "t", "info_url": URL, "deadline": DAY.isoformat()},
                  headers=bearer(admin), status=201)


def test_yesterday_by_the_clock_is_past(fixed, admin):
    app = fixed(at(datetime.combine(DAY, time(0), tzinfo=UTC)))
    yesterday = DAY - timedelta(days=1)
    value = f"{yesterday:%m/%d/%Y}"
    resp = app.post_json(WIDGETS, {"name": "t", "info_url": URL, "deadline": value},
                         headers=bearer(admin), status=400)
    assert resp.json == {
        "message": "Input payload validation failed",
        "errors": {"deadline": (
            f"Successfully parsed {value} as {yesterday:%b %d %Y}. However, this value must be "
            f"a date in the future and {yesterday:%b %d %Y} is BEFORE {DAY:%b %d %Y}"
        )},
    }


def test_the_deadline_day_is_past_from_the_next_midnight(fixed, admin):
    app = fixed(at(DEADLINE + timedelta(microseconds=1)))
    resp = app.put_json(f"{WIDGETS}/t", {"info_url": URL, "deadline": DAY.isoformat()},
                        headers=bearer(admin), status=400)
    assert resp.json["errors"]["deadline"] == (
        f"Successfully parsed {DAY.isoformat()} as {DAY:%b %d %Y}. However, this value must be "
        f"a date in the future and {DAY:%b %d %Y} is BEFORE {DAY + timedelta(days=1):%b %d %Y}"
    )


def test_put_update_checks_the_deadline_against_the_clock(fixed, admin):
    add_widget(fixed, admin)
    later = fixed(at(DEADLINE + timedelta(days=2)))
    resp = later.put_json(f"{WIDGETS}/timed", {"info_url": URL, "deadline": DAY.isoformat()},
                          headers=bearer(admin), status=400)
    assert set(resp.json["errors"]) == {"deadline"}
    later.put_json(f"{WIDGETS}/timed",
                   {"info_url": URL, "deadline": (DAY + timedelta(days=2)).isoformat()},
                   headers=bearer(admin), status=200)
    body = view(fixed, admin, DEADLINE + timedelta(days=2) - timedelta(minutes=5))
    assert body["time_remaining"] == "5 minutes 0 seconds"
    assert body["deadline_passed"] is False


# -- token_expires_in of /auth/user ---------------------------------------------------------

def near_now() -> datetime:
    """A whole second at or just before the real now: PyJWT still accepts iat and exp."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)


def test_token_expires_in_follows_the_clock(fixed, users):
    users.create("clocked@example.com", PASSWORD, admin=False)
    clock = at(near_now())
    app = fixed(clock)
    token = login(app, "clocked@example.com")
    headers = bearer(token)
    assert app.get(f"{API}/auth/user", headers=headers).json["token_expires_in"] == "00:15:00"
    clock.advance(seconds=1)
    assert app.get(f"{API}/auth/user", headers=headers).json["token_expires_in"] == "00:14:59"
    clock.advance(minutes=14, seconds=58)
    assert app.get(f"{API}/auth/user", headers=headers).json["token_expires_in"] == "00:00:01"
    clock.advance(seconds=1)
    assert app.get(f"{API}/auth/user", headers=headers).json["token_expires_in"] == "00:00:00"
    clock.advance(seconds=30)
    # Still accepted by PyJWT (real time), never shown negative.
    assert app.get(f"{API}/auth/user", headers=headers).json["token_expires_in"] == "00:00:00"


def test_token_expires_in_with_days(fixed, users, config):
    users.create("long@example.com", PASSWORD, admin=False)
    clock = at(near_now())
    app = fixed(clock, dataclasses.replace(config, token_lifetime=2 * 86_400 + 3723))
    token = login(app, "long@example.com")
    body = app.get(f"{API}/auth/user", headers=bearer(token)).json
    assert body["token_expires_in"] == "2 days, 01:02:03"
    clock.advance(days=1)
    body = app.get(f"{API}/auth/user", headers=bearer(token)).json
    assert body["token_expires_in"] == "1 day, 01:02:03"


# -- representation units -------------------------------------------------------------------

C = "/api/v1/widgets"


@pytest.mark.parametrize(
    ("total_items", "per_page", "total_pages"),
    [(0, 10, 0), (1, 10, 1), (10, 10, 1), (11, 10, 2), (22, 5, 5), (25, 5, 5), (26, 5, 6),
     (100, 100, 1), (101, 100, 2)],
)
def test_page_total_pages(total_items, per_page, total_pages):
    assert Page(1, per_page, total_items, WIDGETS).total_pages == total_pages


def test_empty_page_last_is_page_1():
    page = Page(1, 10, 0, WIDGETS)
    assert page.links() == {
        "self": f"{C}?page=1&per_page=10",
        "first": f"{C}?page=1&per_page=10",
        "last": f"{C}?page=1&per_page=10",
    }
    assert page.has_prev is False
    assert page.has_next is False


@pytest.mark.parametrize(
    ("number", "rels"),
    [
        (1, ["self", "first", "next", "last"]),
        (2, ["self", "first", "prev", "next", "last"]),
        (4, ["self", "first", "prev", "next", "last"]),
        (5, ["self", "first", "prev", "last"]),
        (9, ["self", "first", "prev", "last"]),
    ],
)
def test_page_links_presence_and_order(number, rels):
    page = Page(number, 5, 22, WIDGETS)
    links = page.links()
    assert list(links) == rels
    assert links["self"] == f"{C}?page={number}&per_page=5"
    assert links["first"] == f"{C}?page=1&per_page=5"
    assert links["last"] == f"{C}?page=5&per_page=5"
    if "prev" in links:
        assert links["prev"] == f"{C}?page={number - 1}&per_page=5"
    if "next" in links:
        assert links["next"] == f"{C}?page={number + 1}&per_page=5"
    assert page.has_prev is ("prev" in rels)
    assert page.has_next is ("next" in rels)


def test_link_header_keeps_order_and_uris():
    links = Page(2, 5, 22, WIDGETS).links()
    assert link_header(links) == (
        f'<{C}?page=2&per_page=5>; rel="self", <{C}?page=1&per_page=5>; rel="first", '
        f'<{C}?page=1&per_page=5>; rel="prev", <{C}?page=3&per_page=5>; rel="next", '
        f'<{C}?page=5&per_page=5>; rel="last"'
    )
    assert link_header({"self": "/a", "last": "/b"}) == '</a>; rel="self", </b>; rel="last"'


@pytest.mark.parametrize(
    ("remaining", "shown"),
    [
        (timedelta(0), "No time remaining"),
        (timedelta(seconds=-5), "No time remaining"),
        (timedelta(milliseconds=250), "250 milliseconds"),
        (timedelta(days=1), "1 day 0 hours 0 minutes 0 seconds"),
        (timedelta(days=2, minutes=1), "2 days 0 hours 1 minute 0 seconds"),
    ],
)
def test_format_time_remaining(remaining, shown):
    assert timefmt.format_time_remaining(remaining) == shown


def test_fixed_clock_advance():
    clock = FixedClock(datetime(2026, 11, 25, 14, 52, 37, tzinfo=UTC))
    clock.advance(hours=1)
    assert clock.now() == datetime(2026, 11, 25, 15, 52, 37, tzinfo=UTC)
    assert timefmt.format_rfc822(clock.now()) == "Wed, 25 Nov 2026 15:52:37 -0000"
    assert timefmt.format_iso8601(clock.now()) == "2026-11-25T15:52:37"
    assert timefmt.format_date(clock.now()) == "11/25/26 03:52:37 PM UTC"


class MidnightClock(timefmt.Clock):
    """Says 23:59:59.9 of ``day`` once, then the next day: a request that crosses midnight."""

    def __init__(self, day: date):
        self.moments = [datetime.combine(day, time(23, 59, 59, 900_000), tzinfo=UTC)]
        self.after = datetime.combine(day + timedelta(days=1), time(0, 0, 0, 100_000), tzinfo=UTC)

    def now(self) -> datetime:
        return self.moments.pop(0) if self.moments else self.after


@pytest.mark.parametrize("method", ["post", "put"])
def test_a_request_crossing_midnight_keeps_the_deadline_it_validated(fixed, admin, method):
    """Validated as 'today' just before midnight, it must not be re-judged afterwards (a 500)."""
    app = fixed(MidnightClock(DAY))
    body = {"name": "midnight", "info_url": URL, "deadline": DAY.isoformat()}
    if method == "post":
        app.post_json(WIDGETS, body, headers=bearer(admin), status=201)
    else:
        app.put_json(f"{WIDGETS}/midnight", body, headers=bearer(admin), status=201)
    shown = view(fixed, admin, DEADLINE - timedelta(days=2), "midnight")
    assert shown["deadline"] == timefmt.format_date(DEADLINE)
