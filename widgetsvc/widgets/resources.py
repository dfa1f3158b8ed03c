"""The widget collection and the widget item (docs/API.md §2): parse, call, respond.

The middleware verifies the token before any responder runs. Every method then checks its
caller (user still there, token not revoked, an admin for writes) in the same statement as it
reads or writes, through ``req.context.caller`` (see auth/caller.py): one round trip per
request. Input is handled inside ``caller.refusals_first()``, so a refused caller gets its 401
or 403 before any validation error, and a name that cannot exist asks ``caller.check()``
before its 404.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import falcon
import psycopg
from falcon.routing import BaseConverter

from widgetsvc import errors, idempotency, paging
from widgetsvc.auth import keys
from widgetsvc.auth.middleware import ADMIN, TOKEN
from widgetsvc.bodies import read_object
from widgetsvc.resource import Resource
from widgetsvc.widgets.conditions import Preconditions, etag, failed
from widgetsvc.widgets.representation import COLLECTION_PATH, widget_body, widget_path


class PathName(NamedTuple):
    """The ``{name}`` of a widget's path: ``sent`` as the client sent it (what PUT validates),
    ``name`` lower-cased (what is looked up and quoted, as names are stored)."""

    sent: str
    name: str

    @property
    def can_exist(self) -> bool:
        """False for a name PostgreSQL cannot even be sent (text holds no NUL): no such widget.
        Any other name is simply looked up."""
        return "\x00" not in self.name


class WidgetNameConverter(BaseConverter):
    """``{name:widget_name}``: the path's name, lower-cased once for every method."""

    def convert(self, value: str) -> PathName:
        return PathName(value, value.lower())


class _WidgetResource(Resource):
    @staticmethod
    def _fields(values: dict[str, Any]) -> dict[str, Any]:
        """The validated (normalised) fields the write queries take."""
        return {"info_url": values["info_url"], "deadline": values["deadline"]}

    @staticmethod
    def _created(req: falcon.Request, resp: falcon.Response, name: str, tag) -> None:
        resp.status = falcon.HTTP_201
        resp.location = f"{req.context.base_url}{widget_path(name)}"  # see hygiene.py
        resp.set_header("ETag", etag(tag))
        resp.media = {"status": "success", "message": f"New widget added: {name}."}


class WidgetCollection(_WidgetResource):
    auth = {"GET": TOKEN, "POST": ADMIN}
    caller_in_statement = frozenset({"GET", "POST"})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self.clock.now()
        cursor_keys = keys.cursor_keys_for_config(self.config)
        with req.context.caller.refusals_first():
            wanted = paging.widget_listing(self.validator, req, cursor_keys, now)
        if wanted.plain:
            offset = min((wanted.number - 1) * wanted.per_page, paging.MAX_OFFSET)
            rows = req.context.caller.all("widget_page", limit=wanted.per_page, offset=offset)
            page = paging.Page(wanted.number, wanted.per_page, rows[0]["total_items"],
                               COLLECTION_PATH)
            paging.respond(resp, page, [widget_body(row, now) for row in rows
                                        if row["name"] is not None])
            return
        rows = req.context.caller.all(wanted.statement, **wanted.params())
        items = [widget_body(row, now) for row in rows if row["name"] is not None]
        paging.respond_widgets(resp, COLLECTION_PATH, wanted, cursor_keys, rows, items)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with req.context.caller.refusals_first():
            values = self.validator.validate(
                "widget_create", read_object(req, self.config.max_body_bytes))
            key = idempotency.requested_key(req)
        name = values["name"]
        if key is not None:
            self._post_once(req, resp, key, name, self._fields(values))
            return
        row = req.context.caller.one("insert_widget", name=name, **self._fields(values))
        if row["etag"] is None:
            raise self._taken(name)
        self._created(req, resp, name, row["etag"])

    @staticmethod
    def _taken(name: str, headers: dict[str, str] | None = None) -> errors.APIError:
        return errors.fail(falcon.HTTP_409,
                           f"Widget name: {name} already exists, must be unique.", headers)

    def _post_once(self, req: falcon.Request, resp: falcon.Response, key: str, name: str,
                   fields: dict[str, Any]) -> None:
        """POST with an Idempotency-Key (docs/API.md §8.8): one statement answers a replay,
        the 422, the in-flight 409, or makes the write and records its outcome."""
        subject = str(req.context.caller.claims.public_id)
        digest = idempotency.request_hash({"name": name, **fields})
        try:
            row = req.context.caller.one(
                "insert_widget_idempotent", name=name, **fields, key=key, request_hash=digest,
                lock_id=idempotency.lock_id("widgets", subject, key))
        except psycopg.Error as exc:
            if idempotency.raced(exc):
                raise idempotency.in_flight() from None
            raise
        if row["prior_status"] is not None:
            if bytes(row["prior_hash"]) != digest:
                raise idempotency.reused()
            if row["prior_status"] != 201:
                raise self._taken(row["prior_name"], {idempotency.REPLAYED: "true"})
            resp.set_header(idempotency.REPLAYED, "true")
            self._created(req, resp, row["prior_name"], row["prior_etag"])
            return
        if not row["free"]:
            raise idempotency.in_flight()
        if row["etag"] is None:
            raise self._taken(name)
        self._created(req, resp, name, row["etag"])


class WidgetItem(_WidgetResource):
    auth = {"GET": TOKEN, "PUT": ADMIN, "DELETE": ADMIN}
    caller_in_statement = frozenset({"GET", "PUT", "DELETE"})

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: PathName) -> None:
        if not name.can_exist:
            req.context.caller.check()  # a refused caller gets the 401, not the 404
            raise errors.fail(falcon.HTTP_404, f"{name.name} not found in database.")
        row = req.context.caller.one("widget_by_name", name=name.name)
        if row["name"] is None:
            raise errors.fail(falcon.HTTP_404, f"{name.name} not found in database.")
        resp.set_header("ETag", etag(row["etag"]))
        if Preconditions.of(req).not_modified(row["etag"]):
            resp.status = falcon.HTTP_304
            return
        resp.media = widget_body(row, self.clock.now())

    def on_put(self, req: falcon.Request, resp: falcon.Response, name: PathName) -> None:
        with req.context.caller.refusals_first():
            body = read_object(req, self.config.max_body_bytes)
            # The path names the widget (a body "name" is ignored). It must be a valid name
            # for the create case, and every stored name is valid, so it is checked every
            # time, with the body's fields, so that all errors are reported at once.
            values = self.validator.validate("widget_create", {**body, "name": name.sent})
            widget = values["name"]
            conditions = Preconditions.of(req)
            if conditions.match is not None and conditions.params()["none_match_any"]:
                raise failed(widget)  # If-Match with If-None-Match: * can never both hold
        fields = {"name": widget, **self._fields(values), **conditions.params()}
        if conditions.match is not None:
            # If-Match: only an existing widget is updated, never created.
            row = req.context.caller.one("update_widget_if_match", **fields)
            created = False
        else:
            row = req.context.caller.one("upsert_widget", **fields)
            created = bool(row["created"])
        if row["etag"] is None:
            raise failed(widget)
        if created:
            self._created(req, resp, widget, row["etag"])
        else:
            resp.set_header("ETag", etag(row["etag"]))
            resp.media = {"status": "success", "message": f"'{widget}' was successfully updated"}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: PathName) -> None:
        if not name.can_exist:
            req.context.caller.check()  # a refused caller gets the 401 or 403, not the 404
            raise errors.fail(falcon.HTTP_404, f"{name.name} not found in database.")
        conditions = Preconditions.of(req)
        row = req.context.caller.one("delete_widget", name=name.name, **conditions.params())
        if not row["deleted"]:
            if row["found"] and conditions.given:
                raise failed(name.name)
            raise errors.fail(falcon.HTTP_404, f"{name.name} not found in database.")
        resp.status = falcon.HTTP_204
