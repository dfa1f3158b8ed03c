"""The widget collection and the widget item (API.md §2): parse, call, respond.

The middleware verifies the token before any responder runs. For writes it has also checked
the caller (an admin) in the database; a read checks its caller in the same statement as it
reads, through ``req.context.reads`` (see auth/caller.py). Either way, 401 and 403 come before
validation errors.
"""

from __future__ import annotations

from typing import Any

import falcon

from widgetsvc import errors, timefmt
from widgetsvc.auth.middleware import ADMIN, TOKEN
from widgetsvc.bodies import read_object
from widgetsvc.resource import Resource
from widgetsvc.validation import (
    InvalidValue,
    check_widget_name,
    parse_date,
    parse_page,
    parse_per_page,
)
from widgetsvc.widgets.representation import (
    Page,
    link_header,
    page_body,
    widget_body,
    widget_path,
)

# PostgreSQL's OFFSET is a bigint; any page past this is simply past the end.
_MAX_OFFSET = 2**62


def _first_values(params: dict[str, Any]) -> dict[str, str]:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in params.items()}


def _could_exist(name: str) -> bool:
    """Only valid names are ever stored: any other is looked for as no name at all (a name
    with a NUL could not even be sent to PostgreSQL)."""
    try:
        check_widget_name(name)
    except InvalidValue:
        return False
    return True


def _lower_name(body: dict[str, Any]) -> dict[str, Any]:
    """Names are stored, compared and quoted lower-cased."""
    if isinstance(body.get("name"), str):
        body = {**body, "name": body["name"].lower()}
    return body


class _WidgetResource(Resource):
    def _fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """The validated body as query parameters. (The deadline's "not in the past" rule was
        checked by the validator; checking it again here could fail across midnight.)"""
        return {
            "info_url": body["info_url"],
            "deadline": timefmt.end_of_day(parse_date(body["deadline"])),
        }

    @staticmethod
    def _created(req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.status = falcon.HTTP_201
        resp.location = f"{req.context.base_url}{widget_path(name)}"  # see hygiene.py
        resp.media = {"status": "success", "message": f"New widget added: {name}."}


class WidgetCollection(_WidgetResource):
    auth = {"GET": TOKEN, "POST": ADMIN}
    reads_check_caller = frozenset({"GET"})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = _first_values(req.params)
        self.validator.validate("pagination", query, where="query string")
        number = parse_page(query.get("page", "1"))
        per_page = parse_per_page(query.get("per_page", "10"))
        offset = min((number - 1) * per_page, _MAX_OFFSET)
        rows = req.context.reads.all("widget_page", limit=per_page, offset=offset)
        now = self.clock.now()
        page = Page(number, per_page, rows[0]["total_items"])
        items = [widget_body(row, now) for row in rows if row["name"] is not None]
        body = page_body(page, items)
        resp.set_header("Link", link_header(body["links"]))
        resp.set_header("Total-Count", str(page.total_items))
        resp.media = body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _lower_name(read_object(req, self.config.max_body_bytes))
        self.validator.validate("widget_create", body)
        name = body["name"]
        row = self.db.one(
            "insert_widget", name=name, owner_id=req.context.user.id, **self._fields(body)
        )
        if row is None:
            raise errors.fail(
                falcon.HTTP_409, f"Widget name: {name} already exists, must be unique."
            )
        self._created(req, resp, name)


class WidgetItem(_WidgetResource):
    auth = {"GET": TOKEN, "PUT": ADMIN, "DELETE": ADMIN}
    reads_check_caller = frozenset({"GET"})

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        name = name.lower()
        # A name that cannot exist is still read (as NULL, which matches nothing): the read is
        # what checks the caller.
        row = req.context.reads.one("widget_by_name", name=name if _could_exist(name) else None)
        if row["name"] is None:
            raise errors.fail(falcon.HTTP_404, f"{name} not found in database.")
        resp.media = widget_body(row, self.clock.now())

    def on_put(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        name = name.lower()
        body = read_object(req, self.config.max_body_bytes)
        # The path names the widget (a body "name" is ignored). It must be a valid name for
        # the create case, and every stored name is valid, so it is checked every time, with
        # the body's fields, so that all errors are reported at once.
        self.validator.validate("widget_create", {**body, "name": name})
        row = self.db.one(
            "upsert_widget", name=name, owner_id=req.context.user.id, **self._fields(body)
        )
        if row["created"]:
            self._created(req, resp, name)
        else:
            resp.media = {"status": "success", "message": f"'{name}' was successfully updated"}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        name = name.lower()
        if not _could_exist(name) or self.db.execute("delete_widget", name=name) == 0:
            raise errors.fail(falcon.HTTP_404, f"{name} not found in database.")
        resp.status = falcon.HTTP_204
