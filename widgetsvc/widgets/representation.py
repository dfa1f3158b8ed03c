"""Widgets to JSON: the widget body (docs/API.md §5); pages are widgetsvc/paging.py."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from widgetsvc import API_PREFIX, timefmt
from widgetsvc.widgets.store import Widget

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


def widget_body(widget: Widget, now: datetime) -> dict[str, Any]:
    """One widget, keys in the contract's order."""
    deadline = widget.deadline
    created, created_iso, created_rfc, deadline_text, owner, link = _fixed_parts(
        widget.name, widget.created_at, deadline, widget.owner_email, widget.owner_public_id
    )
    return {
        "name": widget.name,
        "info_url": widget.info_url,
        "created_at": created,
        "created_at_iso8601": created_iso,
        "created_at_rfc822": created_rfc,
        "deadline": deadline_text,
        "deadline_passed": now > deadline,
        "time_remaining": timefmt.format_time_remaining(deadline - now),
        "owner": owner,
        "link": link,
    }
