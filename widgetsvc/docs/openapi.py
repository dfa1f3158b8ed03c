"""The OpenAPI 3.1 document, assembled from the very JSON Schema files that validate requests.

Request schemas are embedded from ``widgetsvc/schemas`` (their cross-file ``$ref``s rewritten to
``#/components/schemas/...``), so the documentation cannot drift from the validation. Response
bodies are described in ``responses.json`` beside this file. Each operation's security is read
from the ``auth`` declaration of the resource the app routes there (the one the middleware
enforces), never retyped here.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from widgetsvc import API_PREFIX, __version__
from widgetsvc.validation import load_schemas

HERE = Path(__file__).resolve().parent
_FORMS = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")


def _rewrite_refs(node: Any) -> Any:
    """``a.json#/properties/x`` becomes ``#/components/schemas/a/properties/x``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and ".json#" in value:
                file, pointer = value.split("#", 1)
                value = f"#/components/schemas/{file.removesuffix('.json')}{pointer}"
            if key in ("$id", "$schema"):
                continue
            out[key] = _rewrite_refs(value)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema_name: str, description: str, headers: dict | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, schema: dict | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


_CHALLENGE = {"WWW-Authenticate": _header("Bearer challenge (RFC 6750) with the realm")}
_RETRY = {"Retry-After": _header("seconds to wait", {"type": "string"})}
_NO_STORE = {
    "Cache-Control": _header("always no-store", {"const": "no-store"}),
    "Pragma": _header("always no-cache", {"const": "no-cache"}),
}
_LOCATION = {"Location": _header("absolute URL of the widget")}
_ETAG = {"ETag": _header("strong entity tag of the widget as now stored (RFC 9110 §8.8.3)",
                         {"type": "string", "pattern": '^"[0-9a-f]{32}"$'})}
_PAGE_HEADERS = {
    "Link": _header("RFC 8288 links: self, first, prev, next, last"),
    "Total-Count": _header("total number of items", {"type": "string", "pattern": "^[0-9]+$"}),
}


def _errors(*codes: int) -> dict[str, Any]:
    table = {
        400: {
            "description": "Validation failed (all fields at once), or a malformed body",
            "content": {"application/json": {"schema": {
                "oneOf": [_ref("ValidationFailed"), _ref("StatusMessage")]}}},
        },
        401: _json("Message", "Missing, invalid, expired or revoked token", _CHALLENGE),
        403: _json("Message", "The caller is not an administrator", _CHALLENGE),
        404: _json("StatusMessage", "No widget of that name"),
        409: _json("StatusMessage", "The name (or e-mail) is taken"),
        412: _json("StatusMessage", "If-Match / If-None-Match failed: the widget has changed "
                                    "(nothing was written)"),
        413: _json("StatusMessage", "Body over 65,536 bytes"),
        415: _json("StatusMessage", "Body is neither JSON nor a form"),
        503: _json("Message", "PostgreSQL is unreachable; retry later", _RETRY),
    }
    return {str(code): table[code] for code in codes}


def _front_errors() -> dict[str, Any]:
    """What the front (nginx) answers for any operation before the app sees the request."""
    return {
        "414": _json("Message", "Request line (the URL) over 16 KiB: answered by the front"),
        "431": _json("Message", "A header line over 16 KiB: answered by the front"),
    }


def _body(schema_name: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {media: {"schema": _ref(schema_name)} for media in _FORMS},
    }


def _operation(summary: str, tag: str, responses: dict, **extra: Any) -> dict:
    return {"summary": summary, "tags": [tag], "responses": responses, **extra}


def _secure(op: dict[str, Any], auth: str) -> None:
    """The operation's security, from the auth level its resource declares."""
    if auth == "none":
        op["security"] = []
    else:
        op["security"] = [{"bearerAuth": []}]
        op["x-requires-admin"] = auth == "admin"
        if auth == "admin":
            op["description"] = (op.get("description", "") + " Requires an administrator's "
                                 "token (the database decides, not the token's claim).").strip()


_CONVERTER = re.compile(r"\{(\w+):[^}]*\}")


def openapi_path(template: str) -> str:
    """A Falcon route template as an OpenAPI path: ``{name:widget_name}`` is ``{name}``."""
    return _CONVERTER.sub(r"{\1}", template)


def _condition_parameters(*names: str) -> list[dict[str, Any]]:
    text = {
        "If-Match": "ETags (or `*`): write only if the widget's current ETag is one of them",
        "If-None-Match": "ETags (or `*`): GET answers 304 when one matches; PUT with `*` "
                         "only creates",
    }
    return [{"name": name, "in": "header", "required": False, "description": text[name],
             "schema": {"type": "string"}} for name in names]


def _form_patch_body() -> dict[str, Any]:
    """PATCH /users: JSON booleans; forms carry the words true / false (any case)."""
    word = {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"}
    form = {"type": "object", "anyOf": [{"required": ["admin"]}, {"required": ["disabled"]}],
            "properties": {"admin": word, "disabled": word}}
    return {"required": True, "content": {
        "application/json": {"schema": _ref("user_patch")},
        "application/x-www-form-urlencoded": {"schema": form},
        "multipart/form-data": {"schema": form},
    }}


def _name_parameter(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The path's widget name: any name may be looked up (a 404 when none is stored), a name
    PUT creates must be valid (``schema``: the body's ``name`` rules)."""
    return {
        "name": "name", "in": "path", "required": True,
        "description": "widget name (case-insensitive)",
        "schema": schema or {"type": "string", "minLength": 1},
    }


def _query_parameters(schemas: dict[str, Any]) -> list[dict[str, Any]]:
    props = schemas["pagination"]["properties"]
    return [
        {"name": key, "in": "query", "required": False, "description": spec.get("description"),
         "schema": _ref(f"pagination/properties/{key}")}
        for key, spec in props.items()
    ]


def build_document(routes: Mapping[str, object]) -> dict[str, Any]:
    """The document of ``routes`` (the app's resources by route template under the API prefix):
    every routed method is documented, with the auth level its resource declares."""
    request_schemas = {name: _rewrite_refs(s) for name, s in load_schemas().items()}
    responses = json.loads((HERE / "responses.json").read_text(encoding="utf-8"))
    token_ok = lambda text: _json("TokenBody", text, _NO_STORE)  # noqa: E731
    message = lambda text, headers=None: _json("StatusMessage", text, headers)  # noqa: E731
    paths = {
        "/auth/register": {"post": _operation(
            "Register a user and get an access token", "auth",
            {"201": token_ok("Registered"), **_errors(400, 409, 413, 415, 503)},
            requestBody=_body("credentials"))},
        "/auth/login": {"post": _operation(
            "Log in and get an access token", "auth",
            {"200": token_ok("Logged in"),
             "401": _json("StatusMessage", "email or password does not match"),
             **_errors(400, 413, 415, 503)},
            requestBody=_body("credentials"))},
        "/auth/user": {"get": _operation(
            "The caller's account", "auth",
            {"200": _json("UserBody", "The user"), **_errors(401, 503)})},
        "/auth/logout": {"post": _operation(
            "Revoke the caller's token and session", "auth",
            {"200": message("Logged out"), **_errors(401, 503)})},
        "/auth/refresh": {"post": _operation(
            "Exchange a refresh token for new tokens of the same session", "auth",
            {"200": token_ok("Refreshed: the presented refresh token is spent"),
             "401": _json("StatusMessage", "Unknown, expired, revoked or reused refresh "
                                           "token (a reuse revokes the whole session)"),
             **_errors(400, 413, 415, 503)},
            requestBody=_body("refresh"))},
        "/auth/logout-all": {"post": _operation(
            "Revoke every session of the caller", "auth",
            {"200": message("Logged out of all sessions"), **_errors(401, 503)})},
        "/auth/password": {"put": _operation(
            "Change the caller's password; every other session is revoked", "auth",
            {"200": message("Password changed"), **_errors(400, 401, 413, 415, 503),
             "429": message("Too many failed logins for the account from here", _RETRY)},
            requestBody=_body("password_change"))},
        "/auth/jwks.json": {"get": _operation(
            "Public keys that verify access tokens (JWKS)", "auth",
            {"200": _json("JWKS", "The key set (empty with HS256)")})},
        "/users": {"get": _operation(
            "One page of users, in registration order", "users",
            {"200": _json("UserPage", "The page", _PAGE_HEADERS),
             **_errors(400, 401, 403, 503)},
            parameters=_query_parameters(request_schemas))},
        "/users/{public_id}": {
            "parameters": [{"name": "public_id", "in": "path", "required": True,
                            "description": "the user's public_id",
                            "schema": {"type": "string"}}],
            "patch": _operation(
                "Set a user's admin or disabled flag", "users",
                {"200": _json("UserItem", "The user as now stored"),
                 **_errors(400, 401, 403),
                 "404": _json("StatusMessage", "No user with that public_id"),
                 "409": _json("StatusMessage", "Administrators cannot demote or disable "
                                               "themselves"),
                 **_errors(413, 415, 503)},
                requestBody=_form_patch_body(),
                description="Disabling revokes all of the user's sessions at once."),
        },
        "/widgets": {
            "get": _operation(
                "One page of widgets, in creation order", "widgets",
                {"200": _json("WidgetPage", "The page", _PAGE_HEADERS),
                 **_errors(400, 401, 503)},
                parameters=_query_parameters(request_schemas)),
            "post": _operation(
                "Create a widget", "widgets",
                {"201": message("Created", {**_LOCATION, **_ETAG}),
                 **_errors(400, 401, 403, 409, 413, 415, 503)},
                requestBody=_body("widget_create")),
        },
        "/widgets/{name}": {
            "parameters": [_name_parameter()],
            "get": _operation(
                "One widget", "widgets",
                {"200": _json("Widget", "The widget", _ETAG),
                 "304": {"description": "If-None-Match names the current ETag: no body",
                         "headers": _ETAG},
                 **_errors(401, 404, 503)},
                parameters=_condition_parameters("If-None-Match")),
            "put": _operation(
                "Update a widget, or create it when missing", "widgets",
                {"200": message("Updated", _ETAG),
                 "201": message("Created", {**_LOCATION, **_ETAG}),
                 **_errors(400, 401, 403, 412, 413, 415, 503)},
                requestBody=_body("widget_update"),
                parameters=[_name_parameter(_ref("widget_create/properties/name")),
                            *_condition_parameters("If-Match", "If-None-Match")],
                description="A `name` in the body is ignored: the path names the widget, "
                            "which must be a valid name. With If-Match only an existing "
                            "widget with a matching ETag is updated; with `If-None-Match: *` "
                            "it is only created."),
            "delete": _operation(
                "Delete a widget", "widgets",
                {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 412, 503)},
                parameters=_condition_parameters("If-Match", "If-None-Match")),
        },
        "/openapi.json": {"get": _operation(
            "This document", "meta",
            {"200": {"description": "OpenAPI 3.1",
                     "content": {"application/json": {"schema": {"type": "object"}}}}})},
        "/ui": {"get": _operation(
            "Swagger UI", "meta",
            {"200": {"description": "HTML page",
                     "content": {"text/html": {"schema": {"type": "string"}}}}})},
        "/health": {"get": _operation(
            "Service and database health", "meta",
            {"200": _json("Health", "Healthy"),
             "503": _json("Health", "PostgreSQL is unreachable")})},
    }
    declared = {openapi_path(path): getattr(resource, "auth", {})
                for path, resource in routes.items()}
    if set(declared) != set(paths):
        raise ValueError(f"routed but not documented, or the reverse: "
                         f"{sorted(set(declared) ^ set(paths))}")
    for path, item in paths.items():
        methods = {key for key in item if key != "parameters"}
        if methods != {method.lower() for method in declared[path]}:
            raise ValueError(f"{path}: documented {sorted(methods)}, declared "
                             f"{sorted(declared[path])}")
        for method in methods:
            _secure(item[method], declared[path][method.upper()])
            item[method]["responses"].update(_front_errors())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "widgetsvc",
            "version": __version__,
            "description": "The Widget API: JWT authentication with sessions and refresh "
                           "tokens, user administration and a paginated widget collection "
                           "with conditional requests. Authorize with a token from "
                           "/auth/login.",
        },
        "paths": {f"{API_PREFIX}{path}": item for path, item in paths.items()},
        "components": {
            "schemas": {**copy.deepcopy(request_schemas), **responses},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
