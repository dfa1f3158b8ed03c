"""The widget collection and the widget item (docs/API.md §2): parse, call the store, respond.

The middleware verifies the token; the store's one statement checks the caller (auth/caller.py)
and decides 404, 412 and 409; ``resource.Resource`` keeps 401 and 403 before any 400 raised
here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import falcon
from falcon.routing import BaseConverter

from widgetsvc import idempotency, paging
from widgetsvc.auth import keys
from widgetsvc.auth.middleware import ADMIN, TOKEN
from widgetsvc.bodies import read_object
from widgetsvc.db import Database
from widgetsvc.resource import Resource, Shared
from widgetsvc.widgets.conditions import Preconditions, etag
from widgetsvc.widgets.representation import COLLECTION_PATH, widget_body, widget_path
from widgetsvc.widgets.store import Fields, Posted, WidgetStore, not_found


class PathName(NamedTuple):
    """The ``{name}`` of a widget's path: ``sent`` as the client sent it (what PUT validates),
    ``name`` lower-cased (what is looked up and quoted, as names are stored)."""

    sent: str
    name: str


class WidgetNameConverter(BaseConverter):
    """``{name:widget_name}``: the path's name, lower-cased once for every method."""

    def convert(self, value: str) -> PathName:
        return PathName(value, value.lower())


def _fields(values: dict[str, Any]) -> Fields:
    return Fields(values["info_url"], values["deadline"])


def _created(req: falcon.Request, resp: falcon.Response, posted: Posted) -> None:
    resp.status = falcon.HTTP_201
    resp.location = f"{req.context.base_url}{widget_path(posted.name)}"  # see hygiene.py
    resp.set_header("ETag", etag(posted.etag))
    if posted.replayed:
        resp.set_header(idempotency.REPLAYED, "true")
    resp.media = {"status": "success", "message": f"New widget added: {posted.name}."}


class WidgetCollection(Resource):
    auth = {"GET": TOKEN, "POST": ADMIN}
    caller_in_statement = frozenset({"GET", "POST"})

    def __init__(self, shared: Shared, store: WidgetStore):
        super().__init__(shared)
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self.clock.now()
        wanted = paging.widget_listing(self.validator, req, self.store.cursor_keys, now)
        page = self.store.page(req.context.caller, wanted)
        items = [widget_body(widget, now) for widget in page.items]
        if page.total is None:
            paging.cursor_respond(resp, COLLECTION_PATH, wanted.per_page, wanted.cursor,
                                  wanted.kept, items, page.next_cursor)
        else:
            paging.respond(resp, paging.Page(wanted.number, wanted.per_page, page.total,
                                             COLLECTION_PATH, wanted.kept), items)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        values = self.validator.validate(
            "widget_create", read_object(req, self.config.max_body_bytes))
        key = idempotency.requested_key(req)
        name, fields, caller = values["name"], _fields(values), req.context.caller
        posted = (self.store.create(caller, name, fields) if key is None
                  else self.store.create_once(caller, key, name, fields))
        _created(req, resp, posted)


class WidgetItem(Resource):
    auth = {"GET": TOKEN, "PUT": ADMIN, "DELETE": ADMIN}
    caller_in_statement = frozenset({"GET", "PUT", "DELETE"})

    def __init__(self, shared: Shared, store: WidgetStore):
        super().__init__(shared)
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: PathName) -> None:
        widget = self.store.get(req.context.caller, name.name)
        if widget is None:
            raise not_found(name.name)
        resp.set_header("ETag", etag(widget.etag))
        if Preconditions.of(req).not_modified(widget.etag):
            resp.status = falcon.HTTP_304
            return
        resp.media = widget_body(widget, self.clock.now())

    def on_put(self, req: falcon.Request, resp: falcon.Response, name: PathName) -> None:
        body = read_object(req, self.config.max_body_bytes)
        # The path names the widget (a body "name" is ignored). It must be a valid name for
        # the create case, and every stored name is valid, so it is checked every time, with
        # the body's fields, so that all errors are reported at once.
        values = self.validator.validate("widget_create", {**body, "name": name.sent})
        widget = values["name"]
        written = self.store.put(req.context.caller, widget, _fields(values),
                                 Preconditions.of(req))
        if written.created:
            _created(req, resp, Posted(widget, written.etag))
            return
        resp.set_header("ETag", etag(written.etag))
        resp.media = {"status": "success", "message": f"'{widget}' was successfully updated"}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: PathName) -> None:
        self.store.delete(req.context.caller, name.name, Preconditions.of(req))
        resp.status = falcon.HTTP_204


def build(db: Database, shared: Shared) -> dict[str, object]:
    """The widget domain's routes, around one store."""
    store = WidgetStore(db, keys.cursor_keys_for_config(shared.config))
    return {"/widgets": WidgetCollection(shared, store),
            "/widgets/{name:widget_name}": WidgetItem(shared, store)}
