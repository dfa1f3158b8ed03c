"""The OpenAPI 3.1 document, assembled from the very JSON Schema files that validate requests.

Written for the people who generate clients from it (docs/API.md §8.9): every operation has a
stable ``operationId`` and a tag, every ``$ref`` names a whole component, query parameters have
the types a caller passes, bodies are JSON, and every header and status a client meets is
declared. Request schemas are embedded from ``widgetsvc/schemas`` under their ``title`` (a file's
``$ref`` to ``WidgetName.json`` becomes ``#/components/schemas/WidgetName``), so the
documentation cannot drift from the validation. Response bodies are described in
``responses.json`` beside this file. Each operation's security is read from the ``auth``
declaration of the resource the app routes there (the one the middleware enforces), never
retyped here.
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
# Validator-only schemas: the query string, documented as its operations' parameters.
QUERY_SCHEMAS = ("pagination", "widget_list")
FORMS_TOO = ("Forms are accepted too, as by the tutorial: `application/x-www-form-urlencoded` "
             "or `multipart/form-data` with the same fields, read as the JSON body would be.")
LICENSE = {"name": "MIT", "identifier": "MIT"}
TAGS = [
    {"name": "auth", "description": "Registration, login, sessions, tokens and passwords"},
    {"name": "users", "description": "User administration (administrators only)"},
    {"name": "widgets", "description": "The widget collection"},
    {"name": "meta", "description": "This document, its UI and the service's health"},
]


def component_names(schemas: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Each schema file's component name: its ``title`` (``widget_create`` is
    ``WidgetCreate``), by the file name without ``.json``."""
    return {stem: schema["title"] for stem, schema in schemas.items()}


def rewrite_refs(node: Any, names: Mapping[str, str]) -> Any:
    """``WidgetName.json`` becomes ``#/components/schemas/WidgetName``; no ``$id``/``$schema``.
    A reference into another schema (``a.json#/properties/x``) is refused: generators drop
    whatever uses one (§8.9), so a shared rule must be a file of its own."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$id", "$schema"):
                continue
            if key == "$ref" and isinstance(value, str):
                file, _, pointer = value.partition("#")
                if pointer or not file.endswith(".json"):
                    raise ValueError(f"$ref {value!r}: refer to a whole schema file")
                value = f"#/components/schemas/{names[file.removesuffix('.json')]}"
            out[key] = rewrite_refs(value, names)
        return out
    if isinstance(node, list):
        return [rewrite_refs(item, names) for item in node]
    return node


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str | dict[str, Any], description: str,
          headers: dict | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {
            "schema": _ref(schema) if isinstance(schema, str) else schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, schema: dict | None = None,
            required: bool = False) -> dict[str, Any]:
    header: dict[str, Any] = {"description": description, "schema": schema or {"type": "string"}}
    if required:
        header["required"] = True
    return header


_SECONDS = {"type": "string", "pattern": "^[0-9]+$"}
_CHALLENGE = {"WWW-Authenticate": _header("Bearer challenge (RFC 6750) with the realm",
                                          required=True)}
_RETRY = {"Retry-After": _header("seconds to wait before trying again", _SECONDS)}
_RETRY_REQUIRED = {"Retry-After": _header("seconds to wait before trying again", _SECONDS,
                                          required=True)}
_NO_STORE = {
    "Cache-Control": _header("always no-store", {"const": "no-store"}),
    "Pragma": _header("always no-cache", {"const": "no-cache"}),
}
_LOCATION = {"Location": _header("absolute URL of the widget (from PUBLIC_URL, else the "
                                 "request's allowed host)", {"type": "string"}, required=True)}
_ETAG = {"ETag": _header("strong entity tag of the widget as now stored (RFC 9110 §8.8.3): "
                         "send it back in If-Match / If-None-Match",
                         {"type": "string", "pattern": '^"[0-9a-f]{32}"$'}, required=True)}
_PAGE_HEADERS = {
    "Link": _header("RFC 8288 links, the same relative URIs as the body's links, in this "
                    "order: self, first, prev, next, last (a cursor page: self, next)",
                    required=True),
    "Total-Count": _header("the total number of items (offset pages only: a cursor page "
                           "counts nothing)", _SECONDS),
}
_REPLAYED = {"Idempotent-Replayed": _header(
    "`true` on an Idempotency-Key replay: the first request's answer again, nothing changed",
    {"const": "true"})}
_RATE_LIMIT = {
    "RateLimit-Policy": _header("the per-address quota of login, register and password "
                                "changes together (IETF httpapi draft): `\"auth\";q=<per "
                                "minute>;w=60`; on every answer of these operations while a "
                                "limit is set", {"type": "string",
                                                 "pattern": '^"auth";q=[0-9]+;w=60$'}),
    "RateLimit": _header("what is left of it after this request (IETF httpapi draft): "
                         "`\"auth\";r=<remaining>;t=<seconds to reset>`; r=0 on a 429, "
                         "whose t is its Retry-After",
                         {"type": "string", "pattern": '^"auth";r=[0-9]+;t=[0-9]+$'}),
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "1-255 printable ASCII characters: the first request with the key is "
                   "processed and its answer kept 24 hours for the caller (register: the key "
                   "and e-mail); a retry with the same body gets it again, marked "
                   "Idempotent-Replayed, and changes nothing; another body: 422; while the "
                   "first is in flight: 409. Without it nothing changes.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}


def _page_or_cursor_page(page: str, cursor_page: str) -> dict[str, Any]:
    """An offset page, or with ``cursor`` a cursor page (docs/API.md §8.7)."""
    return _json({"anyOf": [_ref(page), _ref(cursor_page)]},
                 "The page (an offset page, or with cursor a cursor page)", _PAGE_HEADERS)
# Bodies of the 400s: the validation errors, a malformed body ({"status": "fail"}), or a
# request refused before it is read (the Host check, or the front: {"message"} alone).
_BAD_REQUEST = {"anyOf": [_ref("ValidationFailed"), _ref("StatusMessage"), _ref("Message")]}


def _errors(*codes: int) -> dict[str, Any]:
    table = {
        400: _json(_BAD_REQUEST, "Validation failed (all fields at once), a malformed body, "
                                 "or a request refused as such (a Host not allowed)"),
        401: _json("Message", "Missing, invalid, expired or revoked token", _CHALLENGE),
        403: _json("Message", "The caller is not an administrator", _CHALLENGE),
        404: _json("StatusMessage", "No widget of that name"),
        409: _json("StatusMessage", "The name (or e-mail) is taken, or a request with the same "
                                    "Idempotency-Key is in progress", _REPLAYED),
        412: _json("StatusMessage", "If-Match / If-None-Match failed: the widget has changed "
                                    "(nothing was written)"),
        413: _json("StatusMessage", "Body over 65,536 bytes"),
        415: _json("StatusMessage", "Body is neither JSON nor a form"),
        422: _json("StatusMessage", "Idempotency-Key reused with a different request"),
        429: _json("StatusMessage", "Too many requests from this address (the per-address "
                                    "rate limit, or the front's flood ceiling above it), or, "
                                    "for a password check, too many failed logins "
                                    "for this account (the lock); retry after Retry-After "
                                    "seconds", {**_RETRY_REQUIRED, **_RATE_LIMIT}),
        503: _json("Message", "Unavailable for now: PostgreSQL unreachable, every hashing slot "
                              "busy (login, register, password change) or the front's gate "
                              "full; retry later", _RETRY),
    }
    return {str(code): table[code] for code in codes}


def _front_errors() -> dict[str, Any]:
    """What any operation can answer before (or instead of) the app: the Host check and the
    front (nginx) refusing a request, or the app failing or not answering."""
    return {
        **_errors(400),
        "408": _json("Message", "Headers or body not received within 10 s: answered by the "
                                "front (or the connection is closed)"),
        "414": _json("Message", "Request line (the URL) over 16 KiB: answered by the front"),
        "431": _json("Message", "A header line over 16 KiB: answered by the front"),
        "500": _json("Message", "Unexpected error (details only in the server's log)"),
        "502": _json("Message", "The application is not answering: answered by the front"),
        **_errors(503),
        "504": _json("Message", "The application did not answer in time: answered by the "
                                "front"),
    }


def _body(schema_name: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }


def _operation(operation_id: str, summary: str, tag: str, responses: dict,
               description: str = "", **extra: Any) -> dict:
    op = {"operationId": operation_id, "summary": summary, "tags": [tag],
          "responses": responses, **extra}
    if "requestBody" in extra:
        description = f"{description} {FORMS_TOO}".strip()
    if description:
        op["description"] = description
    return op


def _secure(op: dict[str, Any], auth: str) -> None:
    """The operation's security, from the auth level its resource declares."""
    if auth == "none":
        op["security"] = []
    else:
        op["security"] = [{"bearerAuth": []}]
        op["x-requires-admin"] = auth == "admin"
        if auth == "admin":
            op["description"] = ("Requires an administrator's token (the database decides, not "
                                 "the token's claim). " + op.get("description", "")).strip()


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


def _name_parameter(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The path's widget name: any name may be looked up (a 404 when none is stored), a name
    PUT creates must be valid (``schema``: the ``WidgetName`` rules)."""
    return {
        "name": "name", "in": "path", "required": True,
        "description": "widget name (case-insensitive)",
        "schema": schema or {"type": "string", "minLength": 1},
    }


def _query_parameters(query: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields of a query string's schema, each its component (``Page``, ``PerPage``) with
    that component's description."""
    params = []
    for key, spec in query["properties"].items():
        target = schemas[spec["$ref"].rsplit("/", 1)[1]]
        params.append({"name": key, "in": "query", "required": False,
                       "description": spec.get("description", target.get("description")),
                       "schema": {"$ref": spec["$ref"]}})
    return params


def build_document(routes: Mapping[str, object], public_url: str = "") -> dict[str, Any]:
    """The document of ``routes`` (the app's resources by route template under the API prefix):
    every routed method is documented, with the auth level its resource declares.
    ``public_url`` (PUBLIC_URL) is the server clients are pointed at; else the document's own
    origin (``/``)."""
    files = load_schemas()
    names = component_names(files)
    by_title = {names[stem]: rewrite_refs(schema, names) for stem, schema in files.items()}
    request_schemas = {title: schema for title, schema in by_title.items()
                       if title not in {names[stem] for stem in QUERY_SCHEMAS}}
    pagination = by_title[names["pagination"]]
    widget_list = by_title[names["widget_list"]]
    responses = json.loads((HERE / "responses.json").read_text(encoding="utf-8"))
    token_ok = lambda text, more=None: _json("TokenBody", text,  # noqa: E731
                                             {**_NO_STORE, **(more or {})})
    policy = _RATE_LIMIT
    message = lambda text, headers=None: _json("StatusMessage", text, headers)  # noqa: E731
    paths = {
        "/auth/register": {"post": _operation(
            "register", "Register a user and get an access token", "auth",
            {"201": token_ok("Registered", {**policy, **_REPLAYED}),
             **_errors(409, 413, 415, 422, 429)},
            requestBody=_body("Credentials"), parameters=[IDEMPOTENCY_KEY])},
        "/auth/login": {"post": _operation(
            "login", "Log in and get an access token", "auth",
            {"200": token_ok("Logged in", policy),
             "401": _json("StatusMessage", "email or password does not match"),
             **_errors(413, 415, 429)},
            requestBody=_body("Credentials"))},
        "/auth/user": {"get": _operation(
            "getCurrentUser", "The caller's account", "auth",
            {"200": _json("UserBody", "The user"), **_errors(401)})},
        "/auth/logout": {"post": _operation(
            "logout", "Revoke the caller's token and session", "auth",
            {"200": message("Logged out"), **_errors(401)})},
        "/auth/refresh": {"post": _operation(
            "refreshToken", "Exchange a refresh token for new tokens of the same session",
            "auth",
            {"200": token_ok("Refreshed: the presented refresh token is spent"),
             "401": _json("StatusMessage", "Unknown, expired, revoked or reused refresh "
                                           "token (a reuse revokes the whole session)"),
             **_errors(413, 415)},
            requestBody=_body("Refresh"))},
        "/auth/logout-all": {"post": _operation(
            "logoutAll", "Revoke every session of the caller", "auth",
            {"200": message("Logged out of all sessions"), **_errors(401)})},
        "/auth/password": {"put": _operation(
            "changePassword", "Change the caller's password; every other session is revoked",
            "auth",
            {"200": message("Password changed", policy), **_errors(401, 413, 415, 429)},
            requestBody=_body("PasswordChange"),
            description="A wrong current_password is a 400 for that field, and counts as a "
                        "failed login for the account from that address.")},
        "/auth/jwks.json": {"get": _operation(
            "getJwks", "Public keys that verify access tokens (JWKS)", "auth",
            {"200": _json("JWKS", "The key set (empty with HS256)")})},
        "/users": {"get": _operation(
            "listUsers", "One page of users, in registration order", "users",
            {"200": _page_or_cursor_page("UserPage", "UserCursorPage"), **_errors(401, 403)},
            parameters=_query_parameters(pagination, by_title))},
        "/users/{public_id}": {
            "parameters": [{"name": "public_id", "in": "path", "required": True,
                            "description": "the user's public_id",
                            "schema": {"type": "string"}}],
            "patch": _operation(
                "updateUser", "Set a user's admin or disabled flag", "users",
                {"200": _json("UserItem", "The user as now stored"),
                 **_errors(401, 403),
                 "404": _json("StatusMessage", "No user with that public_id"),
                 "409": _json("StatusMessage", "Administrators cannot demote or disable "
                                               "themselves, and the last administrator "
                                               "cannot be demoted or disabled"),
                 **_errors(413, 415)},
                requestBody=_body("UserPatch"),
                description="Disabling revokes all of the user's sessions at once. In a form, "
                            "the flags are the words true / false (any case)."),
        },
        "/widgets": {
            "get": _operation(
                "listWidgets", "One page of widgets, sorted and filtered as asked", "widgets",
                {"200": _page_or_cursor_page("WidgetPage", "WidgetCursorPage"),
                 **_errors(401)},
                parameters=_query_parameters(widget_list, by_title),
                description="An offset page (page) or a cursor page (cursor: empty for the "
                            "first page, then each page's next_cursor), never both. Without "
                            "sort, offset pages are in creation order and cursor pages in "
                            "name order. A cursor is good only with the sort and filters it "
                            "was issued with."),
            "post": _operation(
                "createWidget", "Create a widget", "widgets",
                {"201": message("Created", {**_LOCATION, **_ETAG, **_REPLAYED}),
                 **_errors(401, 403, 409, 413, 415, 422)},
                requestBody=_body("WidgetCreate"), parameters=[IDEMPOTENCY_KEY]),
        },
        "/widgets/{name}": {
            "parameters": [_name_parameter()],
            "get": _operation(
                "getWidget", "One widget", "widgets",
                {"200": _json("Widget", "The widget", _ETAG),
                 "304": {"description": "If-None-Match names the current ETag: no body",
                         "headers": _ETAG},
                 **_errors(401, 404)},
                parameters=_condition_parameters("If-None-Match")),
            "put": _operation(
                "updateWidget", "Update a widget, or create it when missing", "widgets",
                {"200": message("Updated", _ETAG),
                 "201": message("Created", {**_LOCATION, **_ETAG}),
                 **_errors(401, 403, 412, 413, 415)},
                requestBody=_body("WidgetUpdate"),
                parameters=[_name_parameter(_ref("WidgetName")),
                            *_condition_parameters("If-Match", "If-None-Match")],
                description="A `name` in the body is ignored: the path names the widget, "
                            "which must be a valid name. With If-Match only an existing "
                            "widget with a matching ETag is updated; with `If-None-Match: *` "
                            "it is only created."),
            "delete": _operation(
                "deleteWidget", "Delete a widget", "widgets",
                {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 412)},
                parameters=_condition_parameters("If-Match", "If-None-Match")),
        },
        "/openapi.json": {"get": _operation(
            "getOpenApiDocument", "This document", "meta",
            {"200": {"description": "OpenAPI 3.1",
                     "content": {"application/json": {"schema": {"type": "object"}}}}})},
        "/ui": {"get": _operation(
            "getSwaggerUi", "Swagger UI", "meta",
            {"200": {"description": "HTML page",
                     "content": {"text/html": {"schema": {"type": "string"}}}}})},
        "/health": {"get": _operation(
            "getHealth", "Service and database health", "meta",
            {"200": _json("Health", "Healthy"),
             "503": _json({"anyOf": [_ref("Health"), _ref("Message")]},
                          "PostgreSQL is unreachable (or the front answered: the service "
                          "is down)", _RETRY)})},
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
            answers = item[method]["responses"]
            for status, response in _front_errors().items():
                answers.setdefault(status, response)
            item[method]["responses"] = dict(sorted(answers.items()))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "widgetsvc",
            "version": __version__,
            "description": "The Widget API: JWT authentication with sessions and refresh "
                           "tokens, user administration and a paginated widget collection "
                           "with conditional requests. Authorize with a token from "
                           "/auth/login. Every time is UTC; each time field says its format. "
                           "Request bodies are JSON (forms are accepted too).",
            "license": LICENSE,
        },
        "servers": [{"url": public_url or "/",
                     "description": "this service" if public_url else
                                    "the origin this document was fetched from"}],
        "tags": TAGS,
        "paths": {f"{API_PREFIX}{path}": item for path, item in paths.items()},
        "components": {
            "schemas": {**copy.deepcopy(request_schemas), **responses},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
