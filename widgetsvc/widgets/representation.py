"""Rows to JSON: the widget body, the page body and its links (docs/API.md §5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from widgetsvc import API_PREFIX, timefmt

COLLECTION_PATH = f"{API_PREFIX}/widgets"


def widget_path(name: str) -> str:
    # Valid names are letters, digits, "_" and "-": ASCII ones need no escaping.
    return f"{COLLECTION_PATH}/{name if name.isascii() else quote(name, safe='')}"


@lru_cache(maxsize=8192)
def _fixed_parts(name: str, created_at: datetime, deadline: datetime, owner_email: str,
                 owner_public_id: Any) -> tuple[str, str, str, str, dict[str, str], str]:
    """The parts of a widget body that do not depend on "now", remembered per row content.

    A page formats ten widgets per request, and the same widgets again for every client; the
    cache key is everything the parts are made of, so an updated row is simply a new key.
    (The owner object is shared between bodies: they are only ever serialized, never changed.)
    """
    return (
        timefmt.format_date(created_at),
        timefmt.format_iso8601(created_at),
        timefmt.format_rfc822(created_at),
        timefmt.format_date(deadline),
        {"email": owner_email, "public_id": str(owner_public_id)},
        widget_path(name),
    )


def widget_body(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One widget, keys in the contract's order."""
    deadline: datetime = row["deadline"]
    created, created_iso, created_rfc, deadline_text, owner, link = _fixed_parts(
        row["name"], row["created_at"], deadline, row["owner_email"], row["owner_public_id"]
    )
    return {
        "name": row["name"],
        "info_url": row["info_url"],
        "created_at": created,
        "created_at_iso8601": created_iso,
        "created_at_rfc822": created_rfc,
        "deadline": deadline_text,
        "deadline_passed": now > deadline,
        "time_remaining": timefmt.format_time_remaining(deadline - now),
        "owner": owner,
        "link": link,
    }


@dataclass(frozen=True)
class Page:
    number: int
    per_page: int
    total_items: int

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
        return f"{COLLECTION_PATH}?page={number}&per_page={self.per_page}"

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
