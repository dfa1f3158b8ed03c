"""``GET /users`` (paged exactly like widgets, with the same page representation) and
``PATCH /users/{public_id}`` (admin flags; disabling revokes every session at once): parse,
call the store, respond."""

from __future__ import annotations

from typing import Any

import falcon

from widgetsvc import API_PREFIX, paging, timefmt
from widgetsvc.auth import keys
from widgetsvc.auth.caller import CurrentUser
from widgetsvc.auth.middleware import ADMIN
from widgetsvc.bodies import is_form, read_object
from widgetsvc.db import Database
from widgetsvc.resource import Resource, Shared
from widgetsvc.users.store import UserAccount, UserStore

COLLECTION_PATH = f"{API_PREFIX}/users"
FLAGS = ("admin", "disabled")


def user_item(user: UserAccount) -> dict[str, Any]:
    return {
        "email": user.email,
        "public_id": str(user.public_id),
        "admin": user.admin,
        "disabled": user.disabled,
        "registered_on": timefmt.format_date(user.registered_on),
        "registered_on_iso8601": timefmt.format_iso8601(user.registered_on),
    }


def _form_booleans(body: dict[str, Any]) -> dict[str, Any]:
    """Forms carry text: "true" / "false" (any case) are the booleans; anything else stays
    text and fails the schema's type."""
    words = {"true": True, "false": False}
    return {k: words.get(v.lower(), v) if k in FLAGS and isinstance(v, str) else v
            for k, v in body.items()}


class _UserResource(Resource):
    def __init__(self, shared: Shared, store: UserStore):
        super().__init__(shared)
        self.store = store


class UserCollection(_UserResource):
    auth = {"GET": ADMIN}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        wanted = paging.user_listing(self.validator, req, self.store.cursor_keys)
        page = self.store.page(wanted)
        items = [user_item(user) for user in page.items]
        if page.total is None:
            paging.cursor_respond(resp, COLLECTION_PATH, wanted.per_page, wanted.cursor, "",
                                  items, page.next_cursor)
        else:
            paging.respond(resp, paging.Page(wanted.number, wanted.per_page, page.total,
                                             COLLECTION_PATH), items)


class UserItem(_UserResource):
    auth = {"PATCH": ADMIN}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, public_id: str) -> None:
        caller: CurrentUser = req.context.user
        body = read_object(req, self.config.max_body_bytes)
        if is_form(req):
            body = _form_booleans(body)
        values = self.validator.validate("user_patch", body)  # admin, disabled or both
        user = self.store.set_flags(caller.public_id, public_id, admin=values.get("admin"),
                                    disabled=values.get("disabled"))
        resp.media = user_item(user)


def build(db: Database, shared: Shared) -> dict[str, object]:
    """The administrators' user routes, around one store."""
    store = UserStore(db, keys.cursor_keys_for_config(shared.config))
    return {"/users": UserCollection(shared, store), "/users/{public_id}": UserItem(shared, store)}
