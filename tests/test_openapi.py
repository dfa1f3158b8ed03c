"""GET /api/v1/openapi.json: a valid OpenAPI 3.1 document of every operation of docs/API.md §2,
whose request schemas are the very files the validators load, written for client generators
(§8.9: operationIds, whole-component references, typed parameters, JSON bodies, every status).
The generators themselves run in tests/test_clients.py."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import falcon.inspect
import pytest
import webtest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.helpers import API
from widgetsvc import timefmt, validation
from widgetsvc.app import create_app
from widgetsvc.docs.openapi import QUERY_SCHEMAS, component_names, openapi_path, rewrite_refs

SCHEMA_FILES = Path(__file__).resolve().parent.parent / "widgetsvc" / "schemas"

# docs/API.md §2, row by row: (method, path) -> auth.
CONTRACT = {
    ("post", f"{API}/auth/register"): "none",
    ("post", f"{API}/auth/login"): "none",
    ("get", f"{API}/auth/user"): "token",
    ("post", f"{API}/auth/logout"): "token",
    ("get", f"{API}/widgets"): "token",
    ("post", f"{API}/widgets"): "admin",
    ("get", f"{API}/widgets/{{name}}"): "token",
    ("put", f"{API}/widgets/{{name}}"): "admin",
    ("delete", f"{API}/widgets/{{name}}"): "admin",
    ("get", f"{API}/openapi.json"): "none",
    ("get", f"{API}/ui"): "none",
    ("get", f"{API}/health"): "none",
    # §8.4 - §8.6
    ("post", f"{API}/auth/refresh"): "none",
    ("post", f"{API}/auth/logout-all"): "token",
    ("put", f"{API}/auth/password"): "token",
    ("get", f"{API}/auth/jwks.json"): "none",
    ("get", f"{API}/users"): "admin",
    ("patch", f"{API}/users/{{public_id}}"): "admin",
}
# The stable names clients are generated with (docs/API.md §8.9): renaming one breaks every
# generated client, so a change here must be deliberate.
OPERATION_IDS = {
    ("post", f"{API}/auth/register"): "register",
    ("post", f"{API}/auth/login"): "login",
    ("get", f"{API}/auth/user"): "getCurrentUser",
    ("post", f"{API}/auth/logout"): "logout",
    ("post", f"{API}/auth/refresh"): "refreshToken",
    ("post", f"{API}/auth/logout-all"): "logoutAll",
    ("put", f"{API}/auth/password"): "changePassword",
    ("get", f"{API}/auth/jwks.json"): "getJwks",
    ("get", f"{API}/users"): "listUsers",
    ("patch", f"{API}/users/{{public_id}}"): "updateUser",
    ("get", f"{API}/widgets"): "listWidgets",
    ("post", f"{API}/widgets"): "createWidget",
    ("get", f"{API}/widgets/{{name}}"): "getWidget",
    ("put", f"{API}/widgets/{{name}}"): "updateWidget",
    ("delete", f"{API}/widgets/{{name}}"): "deleteWidget",
    ("get", f"{API}/openapi.json"): "getOpenApiDocument",
    ("get", f"{API}/ui"): "getSwaggerUi",
    ("get", f"{API}/health"): "getHealth",
}
# Statuses every operation must document (docs/API.md §2-§4, §8), beyond which more are
# allowed; and, on every one, what any request can meet: the Host check (400), the front's
# refusals (408, 414, 431), the app failing (500) or unreachable behind the front (502-504).
FRONT_STATUSES = {"400", "408", "414", "431", "500", "502", "503", "504"}
STATUSES = {
    ("post", f"{API}/auth/register"): {"201", "409", "413", "415", "422", "429"},
    ("post", f"{API}/auth/login"): {"200", "401", "413", "415", "429"},
    ("get", f"{API}/auth/user"): {"200", "401"},
    ("post", f"{API}/auth/logout"): {"200", "401"},
    ("get", f"{API}/widgets"): {"200", "401"},
    ("post", f"{API}/widgets"): {"201", "401", "403", "409", "413", "415", "422"},
    ("get", f"{API}/widgets/{{name}}"): {"200", "304", "401", "404"},
    ("put", f"{API}/widgets/{{name}}"): {"200", "201", "401", "403", "412", "413", "415"},
    ("delete", f"{API}/widgets/{{name}}"): {"204", "401", "403", "404", "412"},
    ("get", f"{API}/openapi.json"): {"200"},
    ("get", f"{API}/ui"): {"200"},
    ("get", f"{API}/health"): {"200"},
    ("post", f"{API}/auth/refresh"): {"200", "401", "413", "415"},
    ("post", f"{API}/auth/logout-all"): {"200", "401"},
    ("put", f"{API}/auth/password"): {"200", "401", "413", "415", "429"},
    ("get", f"{API}/auth/jwks.json"): {"200"},
    ("get", f"{API}/users"): {"200", "401", "403"},
    ("patch", f"{API}/users/{{public_id}}"): {"200", "401", "403", "404", "409", "413", "415"},
}
# Request bodies: JSON, one component each (forms stay accepted, said in the description).
BODIES = {
    ("post", f"{API}/auth/register"): "Credentials",
    ("post", f"{API}/auth/login"): "Credentials",
    ("post", f"{API}/widgets"): "WidgetCreate",
    ("put", f"{API}/widgets/{{name}}"): "WidgetUpdate",
    ("post", f"{API}/auth/refresh"): "Refresh",
    ("put", f"{API}/auth/password"): "PasswordChange",
    ("patch", f"{API}/users/{{public_id}}"): "UserPatch",
}
# The shared field rules, each a schema file of its own and so a component of the document.
FIELD_COMPONENTS = {"Email", "Password", "WidgetName", "InfoUrl", "Deadline", "Page", "PerPage",
                    "AdminFlag", "DisabledFlag", "Cursor", "ListSort", "FilterDate",
                    "PassedFilter", "OwnerFilter", "NamePrefix"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@pytest.fixture
def doc(app):
    resp = app.get(f"{API}/openapi.json")
    assert resp.content_type == "application/json"
    return resp.json


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"]
        assert pointer.startswith("#/"), pointer
        node = doc
        for part in pointer[2:].split("/"):
            node = node[part]
    return node


def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1.")
    validate(doc)  # the OpenAPI 3.1 meta-schema (and its JSON Schema 2020-12 dialect)


def test_the_validator_would_reject_a_broken_document(doc):
    broken = json.loads(json.dumps(doc))
    del broken["paths"][f"{API}/widgets"]["get"]["parameters"][0]["in"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_contract_operation_is_documented_with_its_auth(doc):
    documented = {(method, path): op for method, path, op in operations(doc)}
    assert set(documented) == set(CONTRACT)
    for key, auth in CONTRACT.items():
        op = documented[key]
        if auth == "none":
            assert op["security"] == [], key
            assert "x-requires-admin" not in op, key
        else:
            assert op["security"] == [{"bearerAuth": []}], key
            assert op["x-requires-admin"] is (auth == "admin"), key
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_every_route_of_the_app_is_documented_and_nothing_else(app, doc):
    """The running app's routes (Falcon's own inspection), against the document."""
    routed = set()
    for route in falcon.inspect.inspect_app(app.app).routes:
        for method in route.methods:
            if not method.internal:  # Falcon's default OPTIONS and 405 responders
                routed.add((method.method.lower(), openapi_path(route.path)))
    assert routed, "no route found: inspection broke"
    # HEAD is GET without the body (docs/API.md §8.2): every GET route has it, and it is not
    # documented separately.
    gets = {(method, path) for method, path in routed if method == "get"}
    assert {("head", path) for _, path in gets} == {r for r in routed if r[0] == "head"}
    routed -= {r for r in routed if r[0] == "head"}
    assert routed == {(method, path) for method, path, _ in operations(doc)}


def test_every_documented_response_status_headers_and_body(doc):
    for method, path, op in operations(doc):
        responses = op["responses"]
        assert STATUSES[(method, path)] | FRONT_STATUSES <= set(responses), (method, path)
        for status, response in responses.items():
            response = resolve(doc, response)
            assert response.get("description"), (method, path, status)
            headers = response.get("headers", {})
            # login and refresh answer in the {"status": "fail"} shape, with no challenge
            if status in ("401", "403") and path not in (f"{API}/auth/login",
                                                         f"{API}/auth/refresh"):
                assert "WWW-Authenticate" in headers, (method, path, status)
            if status in ("204", "304"):
                assert "content" not in response
            elif path != f"{API}/ui":
                schema = response["content"]["application/json"]["schema"]
                assert resolve(doc, schema), (method, path, status)
            if status == "429":
                assert headers["Retry-After"]["required"] is True, (method, path)
            if status == "503":
                assert "Retry-After" in headers, (method, path)
    # What a client must read: declared, and required where every such answer carries it.
    required = {
        # a cursor page counts nothing: Total-Count on offset pages only (docs/API.md §8.7)
        ("get", f"{API}/widgets", "200"): {"Link"},
        ("get", f"{API}/users", "200"): {"Link"},
        ("post", f"{API}/widgets", "201"): {"Location", "ETag"},
        ("get", f"{API}/widgets/{{name}}", "200"): {"ETag"},
        ("get", f"{API}/widgets/{{name}}", "304"): {"ETag"},
        ("put", f"{API}/widgets/{{name}}", "200"): {"ETag"},
        ("put", f"{API}/widgets/{{name}}", "201"): {"Location", "ETag"},
    }
    for (method, path, status), names in required.items():
        headers = doc["paths"][path][method]["responses"][status]["headers"]
        assert {name for name, h in headers.items() if h.get("required")} == names
    for path in ("register", "login"):
        ok = doc["paths"][f"{API}/auth/{path}"]["post"]["responses"]
        ok = ok["201" if path == "register" else "200"]
        assert {"Cache-Control", "Pragma"} <= set(ok["headers"])
        assert ok["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/TokenBody"}
    ui = doc["paths"][f"{API}/ui"]["get"]["responses"]["200"]
    assert set(ui["content"]) == {"text/html"}


def test_parameters_have_the_types_a_caller_passes(doc):
    """page an integer >= 1, per_page an integer enum: `tsc --strict` takes `page: 1`; the
    cursor, sort and filters typed too (docs/API.md §8.7)."""
    widgets = {p["name"]: p for p in doc["paths"][f"{API}/widgets"]["get"]["parameters"]}
    types = {name: (resolve(doc, p["schema"])["type"], resolve(doc, p["schema"]).get("format"))
             for name, p in widgets.items()}
    assert types == {
        "page": ("integer", "page-number"), "per_page": ("integer", "per-page"),
        "cursor": ("string", "cursor"), "sort": ("string", None),
        "deadline_before": ("string", "date"), "deadline_after": ("string", "date"),
        "passed": ("boolean", "query-boolean"), "owner": ("string", "uuid"),
        "name_prefix": ("string", "name-prefix")}
    assert resolve(doc, widgets["sort"]["schema"])["enum"] == [
        "name", "-name", "deadline", "-deadline", "created_at", "-created_at"]
    assert "after" in widgets["deadline_after"]["description"]
    assert "before" in widgets["deadline_before"]["description"]
    users = {p["name"] for p in doc["paths"][f"{API}/users"]["get"]["parameters"]}
    assert users == {"page", "per_page", "cursor"}
    for path in (f"{API}/widgets", f"{API}/users"):
        params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        assert all(p["in"] == "query" and not p["required"] for p in params.values())
        page = resolve(doc, params["page"]["schema"])
        assert (page["type"], page["minimum"], page["default"]) == ("integer", 1, 1)
        assert "+07" in params["page"]["description"]  # the lenient parsing, said in prose
        per_page = resolve(doc, params["per_page"]["schema"])
        assert per_page["type"] == "integer"
        assert per_page["enum"] == list(validation.PER_PAGE_CHOICES)
        assert per_page["default"] == 10
    item = doc["paths"][f"{API}/widgets/{{name}}"]
    (name,) = item["parameters"]
    assert (name["name"], name["in"], name["required"]) == ("name", "path", True)
    put = {p["name"]: p for p in item["put"]["parameters"]}
    assert put["name"]["schema"] == {"$ref": "#/components/schemas/WidgetName"}
    for method, headers in (("get", {"If-None-Match"}), ("put", {"If-Match", "If-None-Match"}),
                            ("delete", {"If-Match", "If-None-Match"})):
        assert {p["name"] for p in item[method]["parameters"] if p["in"] == "header"} == headers


def test_request_bodies_are_json_and_say_forms_are_accepted(doc):
    for method, path, op in operations(doc):
        schema_name = BODIES.get((method, path))
        if schema_name is None:
            assert "requestBody" not in op, (method, path)
            continue
        body = op["requestBody"]
        assert body["required"] is True
        assert body["content"] == {"application/json": {"schema": {
            "$ref": f"#/components/schemas/{schema_name}"}}}, (method, path)
        assert "x-www-form-urlencoded" in op["description"], (method, path)


def test_user_patch_is_a_typed_body(doc):
    """Branches that each require one of the typed flags, as named components (a generated
    client offers either; TypeScript refuses `{}` and `42`): not an anyOf of branches that
    only say `required`, which made the Python body `Any` and the TypeScript one `unknown`."""
    components = doc["components"]["schemas"]
    patch = components["UserPatch"]
    assert patch["type"] == "object"
    flags = {"admin": "boolean", "disabled": "boolean"}
    assert patch["anyOf"] == [{"$ref": "#/components/schemas/UserPatchAdmin"},
                              {"$ref": "#/components/schemas/UserPatchDisabled"}]
    for branch, required in (("UserPatchAdmin", "admin"), ("UserPatchDisabled", "disabled")):
        schema = components[branch]
        assert schema["required"] == [required]
        assert {k: resolve(doc, v)["type"] for k, v in schema["properties"].items()} == flags
    registry = Registry().with_resource(
        "urn:doc", Resource.from_contents(doc, default_specification=DRAFT202012))
    valid = Draft202012Validator({"$ref": "urn:doc#/components/schemas/UserPatch"},
                                 registry=registry).is_valid
    assert valid({"admin": True}) and valid({"disabled": False, "admin": False})
    assert not valid({}) and not valid({"other": True}) and not valid({"admin": "yes"})


def test_operation_ids_and_tags_are_pinned(doc):
    ids = {(method, path): op.get("operationId") for method, path, op in operations(doc)}
    assert ids == OPERATION_IDS
    tags = {tag["name"] for tag in doc["tags"]}
    assert all(tag.get("description") for tag in doc["tags"])
    for method, path, op in operations(doc):
        assert len(op["tags"]) == 1 and op["tags"][0] in tags, (method, path)
        assert op["summary"], (method, path)


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_ref_names_a_whole_component(doc):
    """A `$ref` into another schema's properties made openapi-python-client skip every
    operation that used one (GET and POST /widgets, PUT /widgets/{name}, ...)."""
    refs = set(_refs(doc))
    assert refs
    components = doc["components"]["schemas"]
    for ref in refs:
        match = re.fullmatch(r"#/components/schemas/([A-Za-z][A-Za-z0-9]*)", ref)
        assert match and match[1] in components, ref
    assert FIELD_COMPONENTS <= set(components)
    assert {"PageLinks", "WidgetOwner"} <= set(components)


def test_a_schema_file_pointing_into_another_is_refused():
    with pytest.raises(ValueError, match="whole schema"):
        rewrite_refs({"$ref": "widget_create.json#/properties/name"}, {"widget_create": "W"})
    assert rewrite_refs({"items": [{"$ref": "Page.json"}]}, {"Page": "Page"}) == {
        "items": [{"$ref": "#/components/schemas/Page"}]}


def test_servers_and_license(doc, config, db, clock):
    assert [server["url"] for server in doc["servers"]] == ["/"]
    assert doc["info"]["license"] == {"name": "MIT", "identifier": "MIT"}
    public = dataclasses.replace(config, public_url="https://api.example.org",
                                 allowed_hosts=(*config.allowed_hosts, "api.example.org"))
    app = webtest.TestApp(create_app(public, db=db, clock=clock))
    served = app.get(f"{API}/openapi.json").json
    assert [server["url"] for server in served["servers"]] == ["https://api.example.org"]


_TIME_FIELDS = re.compile(r"created_at.*|deadline|registered_on.*")


def test_every_time_field_says_it_is_utc_and_its_format(doc):
    found = set()
    for name, schema in doc["components"]["schemas"].items():
        for field, spec in schema.get("properties", {}).items():
            if not _TIME_FIELDS.fullmatch(field):
                continue
            spec = resolve(doc, spec)
            found.add((name, field))
            assert "UTC" in spec["description"], (name, field)
            if field.endswith("_iso8601"):
                assert "no offset" in spec["description"], (name, field)
            elif field.endswith("_rfc822"):
                assert "-0000" in spec["description"], (name, field)
            elif name not in ("WidgetCreate", "WidgetUpdate"):  # a deadline sent: any date
                assert "%m/%d/%y %I:%M:%S %p UTC" in spec["description"], (name, field)
    assert {("Widget", "created_at"), ("Widget", "created_at_iso8601"),
            ("Widget", "created_at_rfc822"), ("Widget", "deadline"),
            ("UserBody", "registered_on"), ("UserItem", "registered_on"),
            ("UserItem", "registered_on_iso8601"), ("WidgetCreate", "deadline")} <= found


def _as_component(node, names):
    """What a schema file must look like once embedded (references to whole components by
    title, no $id/$schema), written here independently of widgetsvc.docs.openapi."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$id", "$schema"):
                continue
            if key == "$ref":
                assert "#" not in value, value
                value = f"#/components/schemas/{names[value.removesuffix('.json')]}"
            out[key] = _as_component(value, names)
        return out
    if isinstance(node, list):
        return [_as_component(item, names) for item in node]
    return node


def test_request_schemas_are_the_validators_files(doc):
    """No drifting copy: each file the validator loads is a component under its title, equal
    to the file but for its references, which name whole components. The query string's
    schema is its operations' parameters instead."""
    assert validation.SCHEMA_DIR == SCHEMA_FILES
    files = sorted(SCHEMA_FILES.glob("*.json"))
    names = component_names(validation.load_schemas())
    assert {names[p.stem] for p in files} == {
        "Credentials", "Pagination", "WidgetList", "WidgetCreate", "WidgetUpdate", "Refresh",
        "PasswordChange", "UserPatch", "UserPatchAdmin", "UserPatchDisabled", *FIELD_COMPONENTS}
    assert set(validation.load_schemas()) == {p.stem for p in files}
    components = doc["components"]["schemas"]
    for path in files:
        on_disk = json.loads(path.read_text(encoding="utf-8"))
        assert on_disk == validation.load_schemas()[path.stem]
        assert on_disk["$id"] == path.name
        if path.stem in QUERY_SCHEMAS:
            assert names[path.stem] not in components
            continue
        assert components[names[path.stem]] == _as_component(on_disk, names), path.name


def test_the_validator_checks_query_strings_against_the_documented_types():
    """The validator reads `page` and `per_page` as text (their rules: `+07` is 7), then holds
    what they return to the very schema the document publishes (an integer)."""
    validator = validation.Validator(timefmt.Clock())
    assert validator.validate("pagination", {"page": "+07", "per_page": "25"},
                              validation.QUERY_STRING) == {"page": 7, "per_page": 25}
    typed = validator._forms["pagination"].validator
    assert typed.is_valid({"page": 7, "per_page": 25})
    assert not typed.is_valid({"page": "7"}) and not typed.is_valid({"per_page": 7})


def test_responses_schemas_describe_real_bodies(app, users, doc):
    """The described bodies are the ones the app sends (a spot check; schemathesis does more)."""
    registry = Registry().with_resource(
        "urn:doc", Resource.from_contents(doc, default_specification=DRAFT202012))

    def check(name, instance):
        schema = {"$ref": f"urn:doc#/components/schemas/{name}"}
        Draft202012Validator(schema, registry=registry).validate(instance)

    r = app.post_json(f"{API}/auth/register", {"email": "d@example.com", "password": "x"},
                      status=400)
    check("ValidationFailed", r.json)
    r = app.post_json(f"{API}/auth/register",
                      {"email": "d@example.com", "password": "Secret-pass-1"}, status=201)
    check("TokenBody", r.json)
    check("UserBody", app.get(f"{API}/auth/user",
                              headers={"Authorization": f"Bearer {r.json['access_token']}"}).json)
    check("Health", app.get(f"{API}/health").json)
    with pytest.raises(Exception, match="required"):
        check("TokenBody", {"status": "success"})


def test_the_idempotency_and_rate_limit_headers_are_declared(app):
    """docs/API.md §8.8: what a generated client sends and reads on a retry or near a limit."""
    doc = app.get(f"{API}/openapi.json").json
    for path, method in [("/api/v1/widgets", "post"), ("/api/v1/auth/register", "post")]:
        op = doc["paths"][path][method]
        assert [p["name"] for p in op["parameters"] if p["in"] == "header"] == [
            "Idempotency-Key"], path
        ok = op["responses"]["201"]["headers"]
        assert "Idempotent-Replayed" in ok and "Idempotent-Replayed" in op["responses"][
            "409"]["headers"], path
        assert op["responses"]["422"]["content"]["application/json"]
    for path, method, ok in [("/api/v1/auth/login", "post", "200"),
                             ("/api/v1/auth/register", "post", "201"),
                             ("/api/v1/auth/password", "put", "200")]:
        responses = doc["paths"][path][method]["responses"]
        assert "RateLimit-Policy" in responses[ok]["headers"], path
        assert {"RateLimit-Policy", "RateLimit"} <= responses["429"]["headers"].keys(), path
