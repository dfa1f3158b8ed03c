"""Conditional requests on a widget (docs/API.md §8.3, RFC 9110 §13): its strong ETag, and the
If-Match / If-None-Match headers as parameters of the statement that writes, so that the
precondition is decided in the same statement as the write (no read-then-write race)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import falcon

from widgetsvc.errors import fail

# Our ETags are a UUID's 32 (lower-case) hex digits in quotes; any other tag matches no widget.
_HEX = frozenset("0123456789abcdef")


def etag(value: uuid.UUID) -> str:
    return f'"{value.hex}"'


def _parse(header: str | None, *, weak_matches: bool) -> tuple[bool, list[uuid.UUID]] | None:
    """None when the header is absent (or empty); else (``*`` given, the tags that could be
    ours). If-Match compares strongly (a weak tag never matches); If-None-Match weakly."""
    if header is None or not header.strip():
        return None
    any_tag, tags = False, []
    for item in header.split(","):
        item = item.strip()
        if item == "*":
            any_tag = True
            continue
        if item.startswith("W/"):
            if not weak_matches:
                continue
            item = item[2:]
        if len(item) == 34 and item[0] == item[-1] == '"' and _HEX.issuperset(item[1:-1]):
            tags.append(uuid.UUID(item[1:-1]))
    return any_tag, tags


@dataclass(frozen=True)
class Preconditions:
    match: tuple[bool, list[uuid.UUID]] | None
    none_match: tuple[bool, list[uuid.UUID]] | None

    @classmethod
    def of(cls, req: falcon.Request) -> Preconditions:
        return cls(_parse(req.get_header("If-Match"), weak_matches=False),
                   _parse(req.get_header("If-None-Match"), weak_matches=True))

    @property
    def given(self) -> bool:
        return self.match is not None or self.none_match is not None

    def params(self) -> dict[str, Any]:
        """The statement parameters: check_match, match_any, match, none_match_any,
        none_match."""
        match_any, match = self.match or (False, [])
        none_any, none = self.none_match or (False, [])
        return {"check_match": self.match is not None, "match_any": match_any, "match": match,
                "none_match_any": none_any, "none_match": none}

    def not_modified(self, current: uuid.UUID) -> bool:
        """GET: If-None-Match names the current representation (or is ``*``)."""
        if self.none_match is None:
            return False
        any_tag, tags = self.none_match
        return any_tag or current in tags


def failed(name: str) -> falcon.HTTPError:
    return fail(falcon.HTTP_412, f"Precondition failed: {name} has changed.")
