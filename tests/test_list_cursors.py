"""Cursor pages, sorting and filters on the widget and user lists (docs/API.md §8.7): walks
that see every item exactly once, in order, while other items come and go; cursors that are
refused when forged, truncated or carried to another query; every value rule's 400; links that
keep the sort and filters; no totals on a cursor page."""

from __future__ import annotations

import base64
from datetime import datetime
from urllib.parse import quote

import pytest

from tests.helpers import API, PASSWORD, VALIDATION_FAILED, WIDGETS, bearer, login
from tests.helpers_sql import run_sql
from widgetsvc.auth.accounts import NewUser

USERS = f"{API}/users"
INVALID_CURSOR = {"message": VALIDATION_FAILED, "errors": {"cursor": "Invalid cursor."}}
SORTS = ["name", "-name", "deadline", "-deadline", "created_at", "-created_at"]
CURSOR_PAGE_KEYS = ["items", "items_per_page", "has_next", "next_cursor", "links"]


@pytest.fixture
def owner(users) -> NewUser:
    return users.create("owner@example.com", PASSWORD, admin=False)


def _seed(db, owner, prefix: str, count: int, start: str = "2030-01-01", days: int = 9) -> None:
    run_sql(db, "cursors_insert_widgets", prefix=prefix, count=count,
            owner=owner.public_id, days=days, start=start)


def _expected(items: list[dict], sort: str) -> list[str]:
    """The names in ``sort``'s order (ties by name, in the same direction)."""
    deadline = {i["name"]: i["deadline_at"] for i in items}
    field = sort.lstrip("-")

    def key(item):
        if field == "name":
            return (item["name"],)
        if field == "deadline":
            return (deadline[item["name"]], item["name"])
        return (item["created_at_iso8601"], item["name"])
    return [i["name"] for i in sorted(items, key=key, reverse=sort.startswith("-"))]


def _all_items(app, token, query: str = "") -> list[dict]:
    """Every widget (offset pages of 100, creation order), each with its deadline as a
    datetime for sorting."""
    items, page = [], 1
    while True:
        body = app.get(f"{WIDGETS}?page={page}&per_page=100{query}", headers=bearer(token)).json
        items += body["items"]
        if not body["has_next"]:
            break
        page += 1
    for item in items:
        item["deadline_at"] = datetime.strptime(item["deadline"], "%m/%d/%y %I:%M:%S %p UTC")
    return items


def _walk(app, token, first: str, between=None) -> list[str]:
    """The names of a cursor walk from ``first``, following links.next; ``between(n)`` runs
    after page n."""
    names, uri, pages = [], first, 0
    while uri:
        body = app.get(uri, headers=bearer(token)).json
        assert list(body) == CURSOR_PAGE_KEYS
        names += [i["name"] if "name" in i else i["email"] for i in body["items"]]
        pages += 1
        assert pages < 200, "runaway walk"
        if between is not None:
            between(pages)
        assert body["has_next"] == ("next" in body["links"]) == (body["next_cursor"] is not None)
        uri = body["links"].get("next")
    return names


@pytest.mark.parametrize("sort", SORTS)
def test_cursor_walk_sees_every_item_once_in_order_while_others_change(
        app, db, owner, admin_token, sort):
    _seed(db, owner, "w", 37)
    _seed(db, owner, "gone", 12)  # deleted during the walk
    kept = [i for i in _all_items(app, admin_token) if i["name"].startswith("w-")]
    expected = _expected(kept, sort)

    def meanwhile(page: int) -> None:
        run_sql(db, "cursors_delete_names", names=[f"gone-{page}", f"gone-{page + 6}"])
        _seed(db, owner, f"new{page}", 2, days=9)

    seen = _walk(app, admin_token, f"{WIDGETS}?per_page=5&cursor=&sort={sort}", meanwhile)
    assert len(seen) == len(set(seen)), "an item repeated"
    assert [n for n in seen if n.startswith("w-")] == expected


@pytest.mark.parametrize("sort", ["deadline", "-name", "-created_at"])
def test_filtered_cursor_walk_keeps_the_filters(app, db, owner, admin_token, users, sort):
    other = users.create("other@example.com", PASSWORD, admin=False)
    _seed(db, owner, "w", 30)
    _seed(db, owner, "x", 10)  # another prefix
    _seed(db, other, "w_other", 8)  # another owner
    _seed(db, owner, "old", 6, start="2020-01-01")  # passed
    everything = _all_items(app, admin_token)
    kept = [i for i in everything if i["name"].startswith("w-")
            and i["owner"]["public_id"] == str(owner.public_id) and not i["deadline_passed"]
            and "2030-01-02" <= i["deadline_at"].date().isoformat() <= "2030-01-07"]
    query = (f"&sort={sort}&passed=false&owner={owner.public_id}&name_prefix=W-"
             "&deadline_after=2030-01-02&deadline_before=Jan%207%202030")
    seen = _walk(app, admin_token, f"{WIDGETS}?per_page=5&cursor={query}",
                 lambda page: _seed(db, owner, f"w-new{page}", 1))
    assert len(seen) == len(set(seen))
    assert [n for n in seen if "new" not in n] == _expected(kept, sort)
    assert 5 < len(kept) < 30


def test_users_cursor_walk_while_others_register_and_go(app, db, users, admin_token):
    for n in range(13):
        users.create(f"u{n:02}@example.com", PASSWORD, admin=False)
    offset = app.get(f"{USERS}?per_page=100", headers=bearer(admin_token)).json["items"]
    expected = [u["email"] for u in offset]

    def meanwhile(page: int) -> None:
        users.create(f"late{page}@example.com", PASSWORD, admin=False)

    seen = _walk(app, admin_token, f"{USERS}?per_page=5&cursor=", meanwhile)
    assert len(seen) == len(set(seen))
    assert [e for e in seen if not e.startswith("late")] == expected


def test_cursor_page_has_no_totals_and_links_keep_sort_and_filters(app, db, owner,
                                                                   admin_token):
    _seed(db, owner, "w", 12)
    resp = app.get(f"{WIDGETS}?per_page=5&cursor=&sort=-deadline&passed=false&name_prefix=W",
                   headers=bearer(admin_token))
    body = resp.json
    assert list(body) == CURSOR_PAGE_KEYS
    assert "Total-Count" not in resp.headers
    assert body["items_per_page"] == 5 and len(body["items"]) == 5 and body["has_next"]
    kept = "&sort=-deadline&passed=false&name_prefix=w"
    assert body["links"] == {
        "self": f"{WIDGETS}?per_page=5&cursor={kept}",
        "next": f"{WIDGETS}?per_page=5&cursor={body['next_cursor']}{kept}"}
    assert resp.headers["Link"] == (f'<{body["links"]["self"]}>; rel="self", '
                                    f'<{body["links"]["next"]}>; rel="next"')
    last = app.get(f"{WIDGETS}?per_page=100&cursor={kept}", headers=bearer(admin_token)).json
    assert last["has_next"] is False and last["next_cursor"] is None
    assert list(last["links"]) == ["self"] and len(last["items"]) == 12


def test_offset_pages_sort_filter_keep_totals_and_links(app, db, owner, admin_token):
    _seed(db, owner, "w", 12)
    _seed(db, owner, "old", 4, start="2020-01-01")
    resp = app.get(f"{WIDGETS}?page=2&per_page=5&sort=-name&passed=false",
                   headers=bearer(admin_token))
    body = resp.json
    assert body["total_items"] == 12 and resp.headers["Total-Count"] == "12"
    names = sorted((f"w-{n}" for n in range(1, 13)), reverse=True)
    assert [i["name"] for i in body["items"]] == names[5:10]
    assert body["links"]["next"] == f"{WIDGETS}?page=3&per_page=5&sort=-name&passed=false"
    assert f'<{body["links"]["last"]}>; rel="last"' in resp.headers["Link"]
    passed = app.get(f"{WIDGETS}?passed=true&sort=name", headers=bearer(admin_token)).json
    assert [i["name"] for i in passed["items"]] == ["old-1", "old-2", "old-3", "old-4"]
    assert all(i["deadline_passed"] for i in passed["items"])


def test_filters_select_what_they_say(app, db, owner, users, admin_token):
    other = users.create("other@example.com", PASSWORD, admin=False)
    _seed(db, owner, "a%b", 2)  # names as stored may hold what a LIKE pattern would mean
    _seed(db, owner, "axb", 2)
    _seed(db, other, "a_b", 2, start="2031-06-01", days=1)

    def names(query: str) -> list[str]:
        body = app.get(f"{WIDGETS}?per_page=100&sort=name{query}",
                       headers=bearer(admin_token)).json
        return [i["name"] for i in body["items"]]

    assert names("&name_prefix=" + quote("a%")) == ["a%b-1", "a%b-2"]
    assert names("&name_prefix=a_") == ["a_b-1", "a_b-2"]
    assert names(f"&owner={other.public_id}") == ["a_b-1", "a_b-2"]
    assert names(f"&owner={str(other.public_id).upper()}") == ["a_b-1", "a_b-2"]
    # inclusive days: the a_b widgets' deadline is the end of 2031-06-01
    assert names("&deadline_after=2031-06-01") == ["a_b-1", "a_b-2"]
    assert names("&deadline_after=2031-06-02") == []
    assert names("&deadline_before=2031-06-01&deadline_after=06/01/2031") == ["a_b-1", "a_b-2"]
    assert names("&deadline_before=2031-05-31&name_prefix=a_") == []
    assert names("&passed=true") == []


def _cursor(app, token, query: str) -> str:
    return app.get(f"{WIDGETS}?per_page=5&cursor={query}", headers=bearer(token)).json[
        "next_cursor"]


def test_forged_truncated_and_cross_query_cursors_are_refused(app, db, owner, admin_token):
    _seed(db, owner, "w", 12)
    good = _cursor(app, admin_token, "&sort=deadline&passed=false")
    assert app.get(f"{WIDGETS}?per_page=5&cursor={good}&sort=deadline&passed=false",
                   headers=bearer(admin_token)).json["items"]
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    flipped = bytearray(raw)
    flipped[12] ^= 1
    forged = base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode()
    bad = {
        "forged": forged,
        "truncated": good[:-4],
        "random": base64.urlsafe_b64encode(b"\x01" * 40).rstrip(b"=").decode(),
        "one character": "A",
        "not base64url": good[:-1] + "+",
        "padded": good + "=",
        "too long": "A" * 201,
    }
    for what, cursor in bad.items():
        resp = app.get(f"{WIDGETS}?per_page=5&cursor={quote(cursor)}&sort=deadline&passed=false",
                       headers=bearer(admin_token), status=400)
        assert resp.json == INVALID_CURSOR, what
    for other in ["&sort=-deadline&passed=false", "&sort=deadline", "&sort=deadline&passed=true",
                  "&sort=deadline&passed=false&name_prefix=w", "&passed=false"]:
        resp = app.get(f"{WIDGETS}?per_page=5&cursor={good}{other}",
                       headers=bearer(admin_token), status=400)
        assert resp.json == INVALID_CURSOR, other
    # a widgets cursor at /users, and a users cursor at /widgets
    resp = app.get(f"{USERS}?per_page=5&cursor={good}", headers=bearer(admin_token), status=400)
    assert resp.json == INVALID_CURSOR
    for n in range(6):
        app.post_json(f"{API}/auth/register", {"email": f"r{n}@example.com",
                                               "password": PASSWORD})
    user_cursor = app.get(f"{USERS}?per_page=5&cursor=", headers=bearer(admin_token)).json[
        "next_cursor"]
    resp = app.get(f"{WIDGETS}?per_page=5&cursor={user_cursor}", headers=bearer(admin_token),
                   status=400)
    assert resp.json == INVALID_CURSOR


def test_a_cursor_from_another_secret_is_refused(app, db, owner, admin_token, config):
    from widgetsvc.auth.keys import refresh_keys_from_secrets
    from widgetsvc.paging import Position, encode_cursor

    _seed(db, owner, "w", 3)
    stranger = refresh_keys_from_secrets("another-secret-key-that-is-long-enough-42")
    cursor = encode_cursor(stranger, 0, "", Position(0, 1, "w-1"))
    resp = app.get(f"{WIDGETS}?cursor={cursor}", headers=bearer(admin_token), status=400)
    assert resp.json == INVALID_CURSOR


BAD_VALUES = [
    ("sort", "bogus", "Invalid value for sort"),
    ("sort", "NAME", "Invalid value for sort"),
    ("sort", "", "Invalid value for sort"),
    ("sort", "+name", "Invalid value for sort"),
    ("deadline_before", "not-a-date", "Failed to parse 'not-a-date' as a valid date."),
    ("deadline_before", "", "Failed to parse '' as a valid date."),
    ("deadline_after", "2030-13-45", "Failed to parse '2030-13-45' as a valid date."),
    ("passed", "yes", "The value 'yes' is not a valid choice: true or false."),
    ("passed", "TRUE", "The value 'TRUE' is not a valid choice: true or false."),
    ("passed", "", "The value '' is not a valid choice: true or false."),
    ("owner", "nobody", "nobody is not a valid public_id (a UUID)"),
    ("owner", "0" * 32, f"{'0' * 32} is not a valid public_id (a UUID)"),
    ("name_prefix", "", "name_prefix must be 1 to 100 characters"),
    ("name_prefix", "a" * 101, "name_prefix must be 1 to 100 characters"),
    ("name_prefix", "a\x01", "name_prefix must be 1 to 100 characters"),
    ("cursor", "a b", "Invalid cursor."),
    ("cursor", "%%%", "Invalid cursor."),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_VALUES)
@pytest.mark.parametrize("paging", ["page=1", "cursor="])
def test_every_bad_value_is_a_400_naming_its_field(app, user_token, field, value, message,
                                                   paging):
    if field == "cursor" and paging == "cursor=":
        paging = "per_page=5"
    resp = app.get(f"{WIDGETS}?{paging}&{field}={quote(value)}", headers=bearer(user_token),
                   status=400)
    assert resp.json["message"] == VALIDATION_FAILED
    assert list(resp.json["errors"]) == [field]
    assert resp.json["errors"][field].startswith(message)


def test_page_and_cursor_together_is_a_400_for_cursor(app, user_token, users):
    for uri in [f"{WIDGETS}?page=1&cursor=", f"{WIDGETS}?cursor=&page=2&sort=name",
                f"{USERS}?page=1&cursor="]:
        token = user_token if uri.startswith(WIDGETS) else _admin(app, users)
        resp = app.get(uri, headers=bearer(token), status=400)
        assert resp.json["message"] == VALIDATION_FAILED
        assert list(resp.json["errors"]) == ["cursor"]


def test_cursor_pages_check_per_page_too(app, user_token):
    resp = app.get(f"{WIDGETS}?cursor=&per_page=7", headers=bearer(user_token), status=400)
    assert list(resp.json["errors"]) == ["per_page"]


def _admin(app, users) -> str:
    users.create("boss@example.com", PASSWORD, admin=True)
    return login(app, "boss@example.com")


def test_cursor_pages_need_a_token_first(app):
    """Authentication comes before input validation, for cursors as for pages."""
    resp = app.get(f"{WIDGETS}?cursor=%%%&sort=bogus", status=401)
    assert "errors" not in resp.json


def test_deep_cursor_page_reads_from_its_keyset(app, db, owner, admin_token):
    """The last page of a long walk answers with the same rows the offset page would, after
    any number of pages (a cursor holds a position, not a count)."""
    _seed(db, owner, "w", 60)
    cursor, uri = None, f"{WIDGETS}?per_page=25&cursor=&sort=-created_at"
    while uri:
        body = app.get(uri, headers=bearer(admin_token)).json
        cursor = body
        uri = body["links"].get("next")
    offset = app.get(f"{WIDGETS}?per_page=25&page=3&sort=-created_at",
                     headers=bearer(admin_token)).json
    assert [i["name"] for i in cursor["items"]] == [i["name"] for i in offset["items"]]
    assert len(offset["items"]) == 10


# Names of 100 characters (the most a name may have) of 1, 3 and 4 bytes each in UTF-8: the
# longest are cut in their cursors, and those of one prefix share their cut bytes.
LONG_PREFIXES = ["a" * 97, "\u6f22" * 97, "\U00010428" * 97]


def _cursors_of(app, token, first: str, between=None) -> tuple[list[str], list[str]]:
    """The names and the cursors of a walk from ``first``."""
    names, cursors, uri = [], [], first
    while uri:
        body = app.get(uri, headers=bearer(token)).json
        names += [i["name"] for i in body["items"]]
        if body["next_cursor"] is not None:
            cursors.append(body["next_cursor"])
        if between is not None:
            between(body)
        uri = body["links"].get("next")
        assert len(cursors) < 200, "runaway walk"
    return names, cursors


@pytest.mark.parametrize("sort", SORTS)
def test_every_cursor_is_200_characters_at_most_whatever_the_names(app, db, owner,
                                                                   admin_token, sort):
    for prefix in LONG_PREFIXES:
        _seed(db, owner, prefix, 12, days=3)  # "<prefix>-1" .. "<prefix>-12": 99-100 chars
    everything = _all_items(app, admin_token)
    assert max(len(i["name"]) for i in everything) == 100
    assert max(len(i["name"].encode()) for i in everything) == 4 * 97 + 3
    names, cursors = _cursors_of(app, admin_token, f"{WIDGETS}?per_page=5&cursor=&sort={sort}")
    assert len(cursors) == 7
    assert max(len(c) for c in cursors) <= 200, max(cursors, key=len)
    assert names == _expected(everything, sort)


@pytest.mark.parametrize("sort", ["name", "-name", "deadline", "-created_at"])
@pytest.mark.parametrize("prefix", ["w", "\U00010428" * 97], ids=["short", "cut"])
def test_deleting_the_item_a_cursor_points_at(app, db, owner, admin_token, sort, prefix):
    """The next page starts after the deleted item's position all the same. With a name whole
    in the cursor, exactly; with a cut name (looked up by id, now gone) from the cut bytes: a
    name sharing them and the sort key may repeat, but nothing is skipped."""
    _seed(db, owner, prefix, 12, days=1)
    expected = _expected(_all_items(app, admin_token), sort)

    def delete_last(body: dict) -> None:
        if body["items"] and body["has_next"]:
            run_sql(db, "cursors_delete_names", names=[body["items"][-1]["name"]])

    names, _ = _cursors_of(app, admin_token, f"{WIDGETS}?per_page=5&cursor=&sort={sort}",
                           delete_last)
    if prefix == "w":
        assert names == expected
    else:
        assert len(names) > len(set(names)), "no repeat: the walk did not start at the cut"
        firsts = [n for k, n in enumerate(names) if n not in names[:k]]
        assert firsts == expected
        assert all(n.startswith(prefix) for n in names)


def test_a_cut_cursor_whose_widget_remains_resumes_exactly(app, db, owner, admin_token):
    """Its statement reads the whole name by id: no repeat when the widget is still there,
    even with another widget of the same cut bytes deleted and one created meanwhile."""
    prefix = "\U00010428" * 97
    _seed(db, owner, prefix, 12, days=1)
    expected = _expected(_all_items(app, admin_token), "-name")

    def churn(body: dict) -> None:
        shown = {i["name"] for i in body["items"]}
        later = [n for n in expected if n not in shown and n not in seen]
        seen.update(shown)
        if len(later) > 1:
            run_sql(db, "cursors_delete_names", names=[later[-1]])
            expected.remove(later[-1])

    seen: set[str] = set()
    names, cursors = _cursors_of(app, admin_token, f"{WIDGETS}?per_page=5&cursor=&sort=-name",
                                 churn)
    assert names == expected and len(cursors) >= 2


def test_users_pages_refuse_bad_values(app, users):
    """The user list has no sort or filters (docs/API.md §8.7: they are ignored as any
    unknown parameter); its page, per_page and cursor are checked as the widgets' are."""
    token = _admin(app, users)
    for query, field in [("cursor=a%20b", "cursor"), ("cursor=" + "A" * 201, "cursor"),
                         ("cursor=&per_page=7", "per_page"), ("page=0", "page"),
                         ("cursor=AAAA", "cursor")]:
        resp = app.get(f"{USERS}?{query}", headers=bearer(token), status=400)
        assert resp.json["message"] == VALIDATION_FAILED
        assert list(resp.json["errors"]) == [field], query
    body = app.get(f"{USERS}?per_page=5&cursor=&sort=bogus&owner=x",
                   headers=bearer(token)).json
    assert body["items"][0]["email"] == "boss@example.com"
