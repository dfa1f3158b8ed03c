"""GET /api/v1/openapi.json: a valid OpenAPI 3.1 document of every operation of docs/API.md §2,
whose request schemas are the very files the validators load."""

from __future__ import annotations

import json
from pathlib import Path

import falcon.inspect
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.helpers import API
from widgetsvc import validation
from widgetsvc.docs.openapi import openapi_path

SCHEMA_FILES = Path(__file__).resolve().parent.parent / "widgetsvc" / "schemas"
FORMS = {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}

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
# Statuses every operation must document (docs/API.md §2-§4), beyond which more are allowed;
# and the front's own refusals of a URL or a header line that is too long, on every one.
FRONT_STATUSES = {"414", "431"}
STATUSES = {
    ("post", f"{API}/auth/register"): {"201", "400", "409", "413", "415"},
    ("post", f"{API}/auth/login"): {"200", "400", "401", "413", "415"},
    ("get", f"{API}/auth/user"): {"200", "401"},
    ("post", f"{API}/auth/logout"): {"200", "401"},
    ("get", f"{API}/widgets"): {"200", "400", "401"},
    ("post", f"{API}/widgets"): {"201", "400", "401", "403", "409", "413", "415"},
    ("get", f"{API}/widgets/{{name}}"): {"200", "304", "401", "404"},
    ("put", f"{API}/widgets/{{name}}"): {"200", "201", "400", "401", "403", "412", "413",
                                        "415"},
    ("delete", f"{API}/widgets/{{name}}"): {"204", "401", "403", "404", "412"},
    ("get", f"{API}/openapi.json"): {"200"},
    ("get", f"{API}/ui"): {"200"},
    ("get", f"{API}/health"): {"200", "503"},
    ("post", f"{API}/auth/refresh"): {"200", "400", "401", "413", "415"},
    ("post", f"{API}/auth/logout-all"): {"200", "401"},
    ("put", f"{API}/auth/password"): {"200", "400", "401", "413", "415"},
    ("get", f"{API}/auth/jwks.json"): {"200"},
    ("get", f"{API}/users"): {"200", "400", "401", "403"},
    ("patch", f"{API}/users/{{public_id}}"): {"200", "400", "401", "403", "404", "409", "413",
                                             "415"},
}
BODIES = {
    ("post", f"{API}/auth/register"): "credentials",
    ("post", f"{API}/auth/login"): "credentials",
    ("post", f"{API}/widgets"): "widget_create",
    ("put", f"{API}/widgets/{{name}}"): "widget_update",
    ("post", f"{API}/auth/refresh"): "refresh",
    ("put", f"{API}/auth/password"): "password_change",
}
# Forms carry text: PATCH /users documents the words true / false for them.
TEXT_FORMS = {("patch", f"{API}/users/{{public_id}}"): "user_patch"}
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
    widgets = doc["paths"][f"{API}/widgets"]
    assert {"Link", "Total-Count"} <= set(widgets["get"]["responses"]["200"]["headers"])
    assert "Location" in widgets["post"]["responses"]["201"]["headers"]
    item = doc["paths"][f"{API}/widgets/{{name}}"]
    assert "Location" in item["put"]["responses"]["201"]["headers"]
    for path in ("register", "login"):
        ok = doc["paths"][f"{API}/auth/{path}"]["post"]["responses"]
        ok = ok["201" if path == "register" else "200"]
        assert {"Cache-Control", "Pragma"} <= set(ok["headers"])
        assert ok["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/TokenBody"}
    ui = doc["paths"][f"{API}/ui"]["get"]["responses"]["200"]
    assert set(ui["content"]) == {"text/html"}


def test_parameters_and_request_bodies(doc):
    collection = doc["paths"][f"{API}/widgets"]["get"]
    params = {p["name"]: p for p in collection["parameters"]}
    assert set(params) == {"page", "per_page"}
    assert all(p["in"] == "query" and not p["required"] for p in params.values())
    assert resolve(doc, params["per_page"]["schema"])["enum"] == ["5", "10", "25", "50", "100"]
    item = doc["paths"][f"{API}/widgets/{{name}}"]
    (name,) = item["parameters"]
    assert (name["name"], name["in"], name["required"]) == ("name", "path", True)
    for method, path, op in operations(doc):
        if (method, path) in TEXT_FORMS:
            content = op["requestBody"]["content"]
            assert set(content) == FORMS
            assert content["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{TEXT_FORMS[method, path]}"}
            form = content["application/x-www-form-urlencoded"]["schema"]
            assert set(form["properties"]) == {"admin", "disabled"}
            continue
        schema_name = BODIES.get((method, path))
        if schema_name is None:
            assert "requestBody" not in op, (method, path)
            continue
        body = op["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == FORMS, (method, path)
        for media in body["content"].values():
            assert media["schema"] == {"$ref": f"#/components/schemas/{schema_name}"}


def _as_component(node):
    """What a schema file must look like once embedded (refs into components, no $id/$schema),
    written here independently of widgetsvc.docs.openapi."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$id", "$schema"):
                continue
            if key == "$ref":
                file, pointer = value.split("#", 1)
                value = f"#/components/schemas/{file.removesuffix('.json')}{pointer}"
            out[key] = _as_component(value)
        return out
    if isinstance(node, list):
        return [_as_component(item) for item in node]
    return node


def test_request_schemas_are_the_validators_files(doc):
    """No drifting copy: each file the validator loads is a component, equal to the file."""
    assert validation.SCHEMA_DIR == SCHEMA_FILES
    files = sorted(SCHEMA_FILES.glob("*.json"))
    assert {p.stem for p in files} == {"credentials", "pagination", "widget_create",
                                       "widget_update", "refresh", "password_change",
                                       "user_patch"}
    assert set(validation.load_schemas()) == {p.stem for p in files}
    components = doc["components"]["schemas"]
    for path in files:
        on_disk = json.loads(path.read_text(encoding="utf-8"))
        assert on_disk == validation.load_schemas()[path.stem]
        assert components[path.stem] == _as_component(on_disk), path.name
    # Every cross-file reference of the embedded copies resolves inside the document.
    text = json.dumps(components)
    assert ".json#" not in text


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
