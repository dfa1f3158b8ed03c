"""``GET /users`` (paged exactly like widgets, with the same page representation) and
``PATCH /users/{public_id}`` (admin flags; disabling revokes every session at once)."""

from __future__ import annotations

import uuid
from typing import Any

import falcon

from widgetsvc import errors, paging, timefmt
from widgetsvc.auth import keys
from widgetsvc.auth.caller import CurrentUser
from widgetsvc.auth.middleware import ADMIN
from widgetsvc.bodies import is_form, read_object
from widgetsvc.resource import Resource

COLLECTION_PATH = "/api/v1/users"
FLAGS = ("admin", "disabled")
SELF_CHANGE = "Administrators cannot demote or disable themselves."
LAST_ADMIN = "The last administrator cannot be demoted or disabled."


def user_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "email": row["email"],
        "public_id": str(row["public_id"]),
        "admin": row["admin"],
        "disabled": row["disabled"],
        "registered_on": timefmt.format_date(row["registered_on"]),
        "registered_on_iso8601": timefmt.format_iso8601(row["registered_on"]),
    }


def _form_booleans(body: dict[str, Any]) -> dict[str, Any]:
    """Forms carry text: "true" / "false" (any case) are the booleans; anything else stays
    text and fails the schema's type."""
    words = {"true": True, "false": False}
    return {k: words.get(v.lower(), v) if k in FLAGS and isinstance(v, str) else v
            for k, v in body.items()}


class UserCollection(Resource):
    auth = {"GET": ADMIN}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        cursor_keys = keys.cursor_keys_for_config(self.config)
        wanted = paging.user_listing(self.validator, req, cursor_keys)
        if wanted.cursor is not None:
            rows = self.db.all("users_cursor_page", **paging.user_cursor_params(wanted))
            paging.respond_users(resp, COLLECTION_PATH, wanted, cursor_keys, rows,
                                 [user_item(r) for r in rows])
            return
        wanted = paging.Requested(wanted.number, wanted.per_page)
        rows = self.db.all("users_page", limit=wanted.limit, offset=wanted.offset)
        page = paging.Page(wanted.number, wanted.per_page, rows[0]["total_items"], COLLECTION_PATH)
        paging.respond(resp, page, [user_item(r) for r in rows if r["public_id"] is not None])


class UserItem(Resource):
    auth = {"PATCH": ADMIN}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, public_id: str) -> None:
        caller: CurrentUser = req.context.user
        body = read_object(req, self.config.max_body_bytes)
        if is_form(req):
            body = _form_booleans(body)
        values = self.validator.validate("user_patch", body)  # admin, disabled or both
        admin, disabled = values.get("admin"), values.get("disabled")
        try:
            target = uuid.UUID(public_id)
        except ValueError:
            target = None
        if target is None:
            raise errors.fail(falcon.HTTP_404, f"{public_id} not found in database.")
        if target == caller.public_id and (admin is False or disabled is True):
            raise errors.fail(falcon.HTTP_409, SELF_CHANGE)
        with self.db.transaction() as tx:
            # One statement decides the last-administrator rule as it changes the row (see
            # update_user_flags): concurrent demotions can never leave no administrator.
            row = tx.one("update_user_flags", public_id=target, admin=admin, disabled=disabled)
            if row["id"] is not None and disabled:
                # After the UPDATE above: it waited for any login holding the user's row, so
                # this statement sees that login's session too (see start_session).
                tx.execute("revoke_user_sessions", user_id=row["id"])
        if not row["found"]:
            raise errors.fail(falcon.HTTP_404, f"{public_id} not found in database.")
        if row["id"] is None:
            raise errors.fail(falcon.HTTP_409, LAST_ADMIN)
        resp.media = user_item(row)
