"""Paged collections (docs/API.md §5), shared by widgets and users: the page a query string
asks for, the page body with its links, and the ``Link`` and ``Total-Count`` headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon

from widgetsvc.validation import Validator

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


def requested(validator: Validator, req: falcon.Request) -> Requested:
    """``page`` and ``per_page`` from the query string (the first of repeated ones), or the
    400 of the ``pagination`` schema."""
    params = {k: (v[0] if isinstance(v, list) else v) for k, v in req.params.items()}
    query = validator.validate("pagination", params, where="query string")
    return Requested(query["page"], query["per_page"])


@dataclass(frozen=True)
class Page:
    """One page of the collection at ``path``."""

    number: int
    per_page: int
    total_items: int
    path: str

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
        return f"{self.path}?page={number}&per_page={self.per_page}"

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
