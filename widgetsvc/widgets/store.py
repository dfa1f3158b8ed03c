"""The widget store: runs the named statements of sql/queries/widgets.sql (and the keyed POST
of idempotency.sql) and answers in types: ``Widget | None``, ``Written``, ``WidgetPage``, or
the contract's error (404, 412, 409; 422 and 409 for an Idempotency-Key).

Every statement here checks its caller in the same round trip (``auth.caller.checked_rows``),
so a refused caller's 401 or 403 comes before anything decoded from the row. The SQL answers
with sentinels (NULL widget columns for no widget, a NULL ETag for nothing written, ``found``
and ``deleted``, a padding row past a page's end): they are read here and nowhere else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import falcon
import psycopg

from widgetsvc import errors, idempotency, paging
from widgetsvc.auth.caller import Caller, Row, checked_rows
from widgetsvc.auth.sessions import RefreshKeys
from widgetsvc.db import Database
from widgetsvc.widgets.conditions import Preconditions, failed


class Widget(NamedTuple):
    """One widget as read (a tuple: a page builds ten of them per request, and a frozen
    dataclass costs twice as much to build)."""

    name: str
    info_url: str
    created_at: datetime
    deadline: datetime
    owner_email: str
    owner_public_id: str
    etag: uuid.UUID | None = None  # read by GET of one widget; pages carry none

    @classmethod
    def of(cls, row: Row) -> Widget:
        return cls(row["name"], row["info_url"], row["created_at"], row["deadline"],
                   row["owner_email"], row["owner_public_id"], row.get("etag"))


class Fields(NamedTuple):
    """A write's validated (normalised) fields."""

    info_url: str
    deadline: datetime


class Written(NamedTuple):
    """A PUT's outcome: whether it created the widget, and its new ETag."""

    created: bool
    etag: uuid.UUID


class Posted(NamedTuple):
    """A POST's outcome: the widget created, its ETag, and whether this is the kept answer
    of an earlier request with the same Idempotency-Key."""

    name: str
    etag: uuid.UUID
    replayed: bool = False


@dataclass(frozen=True)
class WidgetPage:
    """One page of widgets: its items, the total (None on a cursor page, which counts
    nothing) and the next page's cursor (cursor pages only, when there is one)."""

    items: list[Widget]
    total: int | None
    next_cursor: str | None = None


def not_found(name: str) -> errors.APIError:
    return errors.fail(falcon.HTTP_404, f"{name} not found in database.")


def taken(name: str, headers: dict[str, str] | None = None) -> errors.APIError:
    return errors.fail(falcon.HTTP_409, f"Widget name: {name} already exists, must be unique.",
                       headers)


def _can_exist(name: str) -> bool:
    """False for a name PostgreSQL cannot even be sent (text holds no NUL): no such widget."""
    return "\x00" not in name


class WidgetStore:
    def __init__(self, db: Database, cursor_keys: RefreshKeys):
        self._db = db
        self.cursor_keys = cursor_keys

    def get(self, caller: Caller, name: str) -> Widget | None:
        """The widget stored under ``name`` (lower-cased), or None."""
        if not _can_exist(name):
            return None
        row = checked_rows(self._db, caller, "widget_by_name", name=name)[0]
        return None if row["name"] is None else Widget.of(row)

    def page(self, caller: Caller, listing: paging.WidgetListing) -> WidgetPage:
        """The page ``listing`` asks for: §5's creation-order page, or a sorted, filtered or
        cursor page (docs/API.md §8.7)."""
        if listing.plain:
            offset = min((listing.number - 1) * listing.per_page, paging.MAX_OFFSET)
            rows = checked_rows(self._db, caller, "widget_page", limit=listing.per_page,
                                offset=offset)
        else:
            rows = checked_rows(self._db, caller, listing.statement, **listing.params())
        shown = [row for row in rows if row["name"] is not None]  # no padding row
        if listing.cursor is None:
            return WidgetPage([Widget.of(row) for row in shown], rows[0]["total_items"])
        next_cursor = None
        if len(shown) > listing.per_page:  # the statement reads one more: there is a next
            shown = shown[: listing.per_page]
            next_cursor = paging.encode_cursor(
                self.cursor_keys, paging.cursor_kind(listing.sort_or_default), listing.kept,
                listing.next_position(shown[-1]))
        return WidgetPage([Widget.of(row) for row in shown], None, next_cursor)

    def create(self, caller: Caller, name: str, fields: Fields) -> Posted:
        """A new widget; its name's 409 when taken (the unique constraint decides)."""
        row = checked_rows(self._db, caller, "insert_widget", name=name,
                           **fields._asdict())[0]
        if row["etag"] is None:
            raise taken(name)
        return Posted(name, row["etag"])

    def create_once(self, caller: Caller, key: str, name: str, fields: Fields) -> Posted:
        """``create`` with an Idempotency-Key (docs/API.md §8.8): one statement answers a
        replay, the 422, the in-flight 409, or makes the write and records its outcome."""
        subject = str(caller.claims.public_id)
        digest = idempotency.request_hash({"name": name, **fields._asdict()})
        try:
            row = checked_rows(
                self._db, caller, "insert_widget_idempotent", name=name, **fields._asdict(),
                key=key, request_hash=digest,
                lock_id=idempotency.lock_id("widgets", subject, key))[0]
        except psycopg.Error as exc:
            if idempotency.raced(exc):
                raise idempotency.in_flight() from None
            raise
        if row["prior_status"] is not None:
            if bytes(row["prior_hash"]) != digest:
                raise idempotency.reused()
            if row["prior_status"] != 201:
                raise taken(row["prior_name"], {idempotency.REPLAYED: "true"})
            return Posted(row["prior_name"], row["prior_etag"], replayed=True)
        if not row["free"]:
            raise idempotency.in_flight()
        if row["etag"] is None:
            raise taken(name)
        return Posted(name, row["etag"])

    def put(self, caller: Caller, name: str, fields: Fields,
            conditions: Preconditions) -> Written:
        """Update the widget, or create it (never with If-Match); the 412 when a precondition
        fails (If-Match with ``If-None-Match: *`` can never both hold: no statement then)."""
        if conditions.match is not None and conditions.params()["none_match_any"]:
            raise failed(name)
        params = {"name": name, **fields._asdict(), **conditions.params()}
        if conditions.match is not None:
            row = checked_rows(self._db, caller, "update_widget_if_match", **params)[0]
            created = False
        else:
            row = checked_rows(self._db, caller, "upsert_widget", **params)[0]
            created = bool(row["created"])
        if row["etag"] is None:
            raise failed(name)
        return Written(created, row["etag"])

    def delete(self, caller: Caller, name: str, conditions: Preconditions) -> None:
        """Delete the widget; its 404, or the 412 when it exists and a precondition fails."""
        if not _can_exist(name):
            raise not_found(name)
        row: dict[str, Any] = checked_rows(self._db, caller, "delete_widget", name=name,
                                           **conditions.params())[0]
        if not row["deleted"]:
            if row["found"] and conditions.given:
                raise failed(name)
            raise not_found(name)
