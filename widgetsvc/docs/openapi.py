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
        413: _json("StatusMessage", "Body over 65,536 bytes"),
        415: _json("StatusMessage", "Body is neither JSON nor a form"),
        503: _json("Message", "PostgreSQL is unreachable; retry later", _RETRY),
    }
    return {str(code): table[code] for code in codes}


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


def _name_parameter() -> dict[str, Any]:
    return {
        "name": "name", "in": "path", "required": True,
        "description": "widget name (case-insensitive)",
        "schema": {"type": "string", "minLength": 1},
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
            "Revoke the caller's token", "auth",
            {"200": message("Logged out"), **_errors(401, 503)})},
        "/widgets": {
            "get": _operation(
                "One page of widgets, in creation order", "widgets",
                {"200": _json("WidgetPage", "The page", {
                    "Link": _header("RFC 8288 links: self, first, prev, next, last"),
                    "Total-Count": _header("total number of widgets",
                                           {"type": "string", "pattern": "^[0-9]+$"}),
                 }), **_errors(400, 401, 503)},
                parameters=_query_parameters(request_schemas)),
            "post": _operation(
                "Create a widget", "widgets",
                {"201": message("Created", _LOCATION),
                 **_errors(400, 401, 403, 409, 413, 415, 503)},
                requestBody=_body("widget_create")),
        },
        "/widgets/{name}": {
            "parameters": [_name_parameter()],
            "get": _operation(
                "One widget", "widgets",
                {"200": _json("Widget", "The widget"), **_errors(401, 404, 503)}),
            "put": _operation(
                "Update a widget, or create it when missing", "widgets",
                {"200": message("Updated"), "201": message("Created", _LOCATION),
                 **_errors(400, 401, 403, 413, 415, 503)},
                requestBody=_body("widget_update"),
                description="A `name` in the body is ignored: the path names the widget."),
            "delete": _operation(
                "Delete a widget", "widgets",
                {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 503)}),
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
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "widgetsvc",
            "version": __version__,
            "description": "The Widget API: JWT authentication and a paginated widget "
                           "collection. Authorize with a token from /auth/login.",
        },
        "paths": {f"{API_PREFIX}{path}": item for path, item in paths.items()},
        "components": {
            "schemas": {**copy.deepcopy(request_schemas), **responses},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
