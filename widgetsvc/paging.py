"""Paged collections (docs/API.md §5, §8.7), shared by widgets and users: the page a query
string asks for (an offset page, or a cursor page, sorted and filtered), the page body with its
links, and the ``Link`` and ``Total-Count`` headers.

A cursor is the keyset of the last item a page showed (its sort key, id and name, or a user's
registration time and id), bound to the collection, sort and filters it was issued for, under
a MAC (``auth.keys.cursor_keys_for_config``): a client can neither forge one nor carry one to
another query, and the server keeps no state for it. It is at most MAX_CURSOR_CHARS long: a
name too long for that is cut, and the page's statement looks the whole one up by id."""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

import falcon

from widgetsvc.auth.sessions import RefreshKeys
from widgetsvc.errors import validation_failed
from widgetsvc.validation import INVALID_CURSOR, MAX_CURSOR_CHARS, Validator

# PostgreSQL's OFFSET is a bigint; any page past this is simply past the end.
MAX_OFFSET = 2**62


@dataclass(frozen=True)
class Requested:
    """The page a request asks for, validated: ``limit`` and ``offset`` for its query."""

    number: int
    per_page: int

    @property
    def limit(self) -> int:
        return self.per_page

    @property
    def offset(self) -> int:
        return min((self.number - 1) * self.per_page, MAX_OFFSET)


@dataclass(frozen=True)
class Page:
    """One page of the collection at ``path``."""

    number: int
    per_page: int
    total_items: int
    path: str
    kept: str = ""  # the sort and filters every link keeps (``&sort=...``)

    @property
    def total_pages(self) -> int:
        return -(-self.total_items // self.per_page)

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.total_pages

    def uri(self, number: int) -> str:
        return f"{self.path}?page={number}&per_page={self.per_page}{self.kept}"

    def links(self) -> dict[str, str]:
        """self, first, prev (when has_prev), next (when has_next), last: in that order."""
        links = {"self": self.uri(self.number), "first": self.uri(1)}
        if self.has_prev:
            links["prev"] = self.uri(self.number - 1)
        if self.has_next:
            links["next"] = self.uri(self.number + 1)
        links["last"] = self.uri(max(self.total_pages, 1))
        return links


def page_body(page: Page, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "links": page.links(),
        "has_prev": page.has_prev,
        "has_next": page.has_next,
        "page": page.number,
        "total_pages": page.total_pages,
        "items_per_page": page.per_page,
        "total_items": page.total_items,
        "items": items,
    }


def link_header(links: dict[str, str]) -> str:
    """RFC 8288 ``Link`` header with exactly the body's URIs, in the body's order."""
    return ", ".join(f'<{uri}>; rel="{rel}"' for rel, uri in links.items())


def respond(resp: falcon.Response, page: Page, items: list[dict[str, Any]]) -> None:
    """The page body, and its links and total as headers too."""
    body = page_body(page, items)
    resp.set_header("Link", link_header(body["links"]))
    resp.set_header("Total-Count", str(page.total_items))
    resp.media = body


# -- cursor pages (docs/API.md §8.7) -----------------------------------------------------

# Each sort: (sort column, descending). Without ``sort`` a cursor page is in name order.
SORTS = {"name": ("name", False), "-name": ("name", True),
         "deadline": ("deadline", False), "-deadline": ("deadline", True),
         "created_at": ("created_at", False), "-created_at": ("created_at", True)}
_KIND = {sort: code for code, sort in enumerate(SORTS)}
_USERS_KIND = len(SORTS)
_VERSION = 2
_CUT = 0x80  # in the kind byte: the cursor carries only the first bytes of the name
_HEAD = struct.Struct(">BBqq")  # version, kind (collection and sort, | _CUT), key, item id
_TAG_BYTES = 16
NAME_BYTES = MAX_CURSOR_CHARS * 3 // 4 - _HEAD.size - _TAG_BYTES  # 116
# After every name that starts with a cut name's bytes, and after every name (a name is
# letters, digits, _ and -): the highest code point, last in the C collation (the private
# clusters' and bin/cluster's; a collation that sorts it before some letter would end a
# descending walk in name order early).
_PAST_PREFIX = "\U0010ffff"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FILTERS = ("deadline_before", "deadline_after", "passed", "owner", "name_prefix")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class Position:
    """Where a cursor page starts: after the item ``item`` (a widget's or a user's id), whose
    sort key was ``key`` (a time in microseconds; 0 in name order) and whose name is ``name``
    (empty for users), or, when ``whole`` is false, starts with ``name``: a name longer than
    NAME_BYTES in UTF-8 is cut there, and the page looks the whole name up by ``item``."""

    key: int
    item: int
    name: str = ""
    whole: bool = True


def cursor_kind(sort: str) -> int:
    """The kind a widget cursor of this sort carries (bin/bench makes a deep cursor)."""
    return _KIND[sort]


def _binding(kind: int, query: str) -> bytes:
    """What the MAC covers besides the cursor's bytes: the collection, sort and filters (a
    cursor carried to another query fails its MAC)."""
    return hashlib.sha256(f"{kind}\0{query}".encode()).digest()


def _cut(name: str) -> bytes:
    """The name's first NAME_BYTES bytes of UTF-8, ending on a character."""
    raw = name.encode("utf-8")
    if len(raw) <= NAME_BYTES:
        return raw
    return raw[:NAME_BYTES].decode("utf-8", "ignore").encode("utf-8")


def encode_cursor(keys: RefreshKeys, kind: int, query: str, position: Position) -> str:
    """The opaque cursor, MAC'd with its query: version, kind, key, item id and the name (or
    its first NAME_BYTES bytes); MAX_CURSOR_CHARS characters at most whatever the name."""
    name = _cut(position.name)
    whole = position.whole and len(name) == len(position.name.encode("utf-8"))
    body = _HEAD.pack(_VERSION, kind | (0 if whole else _CUT), position.key, position.item)
    body += name
    return _b64(body + keys.tag(body + _binding(kind, query))[:_TAG_BYTES])


def decode_cursor(keys: RefreshKeys, kind: int, query: str, value: str) -> Position:
    """The position of a cursor issued for this kind and query, else the 400 for ``cursor``
    (not ours, altered, truncated, or issued for another sort, filter or collection)."""
    invalid = validation_failed({"cursor": INVALID_CURSOR})
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise invalid from None
    if _b64(raw) != value or len(raw) < _HEAD.size + _TAG_BYTES:
        raise invalid
    body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not keys.verifies(body + _binding(kind, query), tag):
        raise invalid
    version, flags, key, item = _HEAD.unpack_from(body)
    if version != _VERSION or flags & ~_CUT != kind:
        raise invalid
    try:
        name = body[_HEAD.size:].decode("utf-8")
    except UnicodeDecodeError:
        raise invalid from None
    return Position(key, item, name, whole=not flags & _CUT)


def _query_text(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"&{name}={quote(value, safe='')}" for name, value in pairs)


def _single(req: falcon.Request) -> dict[str, str]:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in req.params.items()}


def _cursor_or_page(raw: dict[str, str], query: dict[str, Any]) -> str | None:
    """The cursor asked for (None: an offset page); ``page`` with it is refused."""
    if "cursor" not in raw:
        return None
    if "page" in raw:
        raise validation_failed({"cursor": "Use either page or cursor, not both."})
    return query["cursor"]


@dataclass(frozen=True)
class WidgetListing:
    """A widget list request, validated: its page (offset ``number``, or a cursor page at
    ``position``, None for the first), sort and filters, and the query string its links
    keep."""

    per_page: int
    number: int | None
    cursor: str | None
    position: Position | None
    sort: str | None
    filters: list[tuple[str, str]] = field(default_factory=list)
    deadline_from: datetime | None = None
    deadline_to: datetime | None = None
    owner: str | None = None
    name_like: str | None = None

    @property
    def plain(self) -> bool:
        """An offset page in creation order, unfiltered: the §5 page (widget_page)."""
        return self.cursor is None and self.sort is None and not self.filters

    @property
    def sort_or_default(self) -> str:
        if self.sort is not None:
            return self.sort
        return "name" if self.cursor is not None else "created_at"

    @property
    def kept(self) -> str:
        """``&sort=...&filter=...``: what every link of the page keeps."""
        pairs = ([("sort", self.sort)] if self.sort is not None else []) + self.filters
        return _query_text(pairs)

    @property
    def statement(self) -> str:
        """The named statement of this page: widget_list (assembled for its filters) when
        filtered, else its sort's own widgets_by_<column>[_desc]."""
        if self.filters:
            return "widget_list"
        column, descending = SORTS[self.sort_or_default]
        return f"widgets_by_{column}{'_desc' if descending else ''}"

    def params(self) -> dict[str, Any]:
        """The statement's parameters (one more row than a cursor page shows: has_next). The
        unfiltered statements start every page from a position: without one, the lowest (or,
        descending, the highest) there is."""
        column, descending = SORTS[self.sort_or_default]
        after_time = after_name = after_id = None
        if self.position is None and not self.filters:
            after_time, after_name = ("infinity", _PAST_PREFIX) if descending else ("-infinity", "")
        if (position := self.position) is not None:
            after_name = position.name
            if not position.whole:
                # The whole name is looked up by id; should that widget be gone, the page
                # starts at the cut name instead: a later name sharing those bytes and the
                # sort key may then be shown again, but none is skipped.
                after_id = position.item
                if descending:
                    after_name += _PAST_PREFIX
            if column != "name":
                after_time = _moment(position.key)
        cursor_page = self.cursor is not None
        return {
            "counting": not cursor_page,
            "sort_key": column, "descending": descending,
            "after_time": after_time, "after_name": after_name, "after_id": after_id,
            "deadline_from": self.deadline_from, "deadline_to": self.deadline_to,
            "owner": self.owner, "name_like": self.name_like,
            "skip": 0 if cursor_page else min((self.number - 1) * self.per_page, MAX_OFFSET),
            "take": self.per_page + 1 if cursor_page else self.per_page,
        }

    def next_position(self, row: dict[str, Any]) -> Position:
        column, _ = SORTS[self.sort_or_default]
        key = 0 if column == "name" else _micros(row[column])
        return Position(key, row["id"], row["name"])


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching names that start with ``prefix``, its % and _ literal."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def widget_listing(validator: Validator, req: falcon.Request, keys: RefreshKeys,
                   now: datetime) -> WidgetListing:
    """The widget list request's page, sort and filters, or the 400 naming each bad field."""
    raw = _single(req)
    query = validator.validate("widget_list", raw, where="query string")
    cursor = _cursor_or_page(raw, query)
    filters = [(name, _text(query[name])) for name in FILTERS if name in raw]
    lower = upper = None
    if "deadline_after" in query:
        lower = _day_start(date.fromisoformat(query["deadline_after"]))
    if "deadline_before" in query:
        day = date.fromisoformat(query["deadline_before"])
        upper = None if day == date.max else _day_start(day + timedelta(days=1))
    if query.get("passed") is True:
        upper = now if upper is None else min(upper, now)
    elif query.get("passed") is False:
        lower = now if lower is None else max(lower, now)
    sort = query.get("sort")
    listing = WidgetListing(
        per_page=query["per_page"], number=None if cursor is not None else query["page"],
        cursor=cursor, position=None, sort=sort, filters=filters,
        deadline_from=lower, deadline_to=upper, owner=query.get("owner"),
        name_like=_like_prefix(query["name_prefix"]) if "name_prefix" in query else None)
    if cursor:
        position = decode_cursor(keys, _KIND[listing.sort_or_default], listing.kept, cursor)
        listing = WidgetListing(**{**listing.__dict__, "position": position})
    return listing


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cursor_respond(resp: falcon.Response, path: str, per_page: int, sent: str,
                   kept: str, items: list[dict[str, Any]], next_cursor: str | None) -> None:
    """A cursor page: no totals; links self and next (when there is one), as in ``Link``."""
    def uri(cursor: str) -> str:
        return f"{path}?per_page={per_page}&cursor={cursor}{kept}"

    links = {"self": uri(sent)}
    if next_cursor is not None:
        links["next"] = uri(next_cursor)
    resp.set_header("Link", link_header(links))
    resp.media = {"items": items, "items_per_page": per_page,
                  "has_next": next_cursor is not None, "next_cursor": next_cursor,
                  "links": links}


@dataclass(frozen=True)
class UserListing:
    """A users list request: an offset page (``number``) or a cursor page (``cursor``)."""

    per_page: int
    number: int | None
    cursor: str | None
    position: Position | None


def user_listing(validator: Validator, req: falcon.Request, keys: RefreshKeys) -> UserListing:
    raw = _single(req)
    query = validator.validate("pagination", raw, where="query string")
    cursor = _cursor_or_page(raw, query)
    position = decode_cursor(keys, _USERS_KIND, "", cursor) if cursor else None
    return UserListing(query["per_page"], None if cursor is not None else query["page"],
                       cursor, position)


def user_cursor_params(listing: UserListing) -> dict[str, Any]:
    """users_cursor_page's parameters (one more row than the page shows: has_next)."""
    if listing.position is None:
        return {"after_time": "-infinity", "after_id": 0, "limit": listing.per_page + 1}
    return {"after_time": _moment(listing.position.key), "after_id": listing.position.item,
            "limit": listing.per_page + 1}


def next_user_cursor(keys: RefreshKeys, listing: UserListing,
                     rows: list[dict[str, Any]]) -> str | None:
    """The cursor after a users page, when users_cursor_page's extra row says there is one."""
    if len(rows) <= listing.per_page:
        return None
    last = rows[listing.per_page - 1]
    return encode_cursor(keys, _USERS_KIND, "",
                         Position(_micros(last["registered_on"]), last["id"]))
