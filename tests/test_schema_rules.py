"""The schemas (and so the OpenAPI document) say what the rules accept: the cases random
schemathesis runs found, pinned, and the patterns held against the rules they state."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.helpers import API, bearer
from widgetsvc.validation import (
    InvalidValue,
    _inlined,
    check_email,
    check_url,
    check_widget_name,
    load_schemas,
    parse_page,
)

SCHEMAS = load_schemas()
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values())
FUTURE = "2099-11-28"


def schema_valid(schema: str, instance: dict) -> bool:
    """What a client (or a tool) reading the document would conclude: keywords only, formats
    unchecked."""
    return Draft202012Validator(SCHEMAS[schema], registry=REGISTRY).is_valid(instance)


def spec(schema: str, field: str) -> dict:
    node = SCHEMAS[schema]["properties"][field]
    if "$ref" in node:
        node = REGISTRY.resolver(base_uri=SCHEMAS[schema]["$id"]).lookup(node["$ref"]).contents
    return node


def accepts(rule, value: str) -> bool:
    try:
        rule(value)
    except InvalidValue:
        return False
    return True


# -- found by schemathesis with random seeds: schema-valid, yet refused ------------------------

def test_an_empty_page_is_refused_and_the_document_says_so(app, user_token):
    resp = app.get(f"{API}/widgets?page=", headers=bearer(user_token), status=400)
    assert resp.json["errors"] == {"page": " is not a valid integer"}
    # The document states the type a caller passes (an integer) and says the rest in words.
    assert not schema_valid("pagination", {"page": ""})
    assert schema_valid("pagination", {"page": 7})
    assert "+07" in spec("pagination", "page")["description"]


@pytest.mark.parametrize("method", ["post", "put"])
def test_an_info_url_of_zeros_is_refused_and_the_document_says_so(app, admin_token, method):
    zeros = "0" * 250
    url = f"{API}/widgets" if method == "post" else f"{API}/widgets/zeros"
    fields = {"name": "zeros", "info_url": zeros, "deadline": FUTURE}
    resp = getattr(app, method)(url, params=fields, headers=bearer(admin_token), status=400,
                                content_type="multipart/form-data", upload_files=[])
    assert resp.json["errors"] == {"info_url": f"{zeros} is not a valid URL"}
    assert not schema_valid("widget_update", {"info_url": zeros, "deadline": FUTURE})
    assert schema_valid("widget_update", {"info_url": "https://www.example.com/x",
                                          "deadline": FUTURE})


def test_a_password_of_72_characters_but_more_bytes_is_refused_as_the_document_describes(app):
    password = "é" * 40  # 40 characters, 80 bytes
    resp = app.post_json(f"{API}/auth/register", {"email": "b@example.com", "password": password},
                         status=400)
    assert resp.json["errors"] == {"password": "Password must be at most 72 bytes."}
    # JSON Schema counts characters: the document can only say it in words.
    assert schema_valid("credentials", {"email": "b@example.com", "password": password})
    assert "72 bytes" in spec("credentials", "password")["description"]
    assert not schema_valid("credentials", {"email": "b@example.com", "password": "x" * 73})


# -- each pattern against its rule ---------------------------------------------------------------

RULES = {  # (schema, field): the rule the pattern states
    ("widget_create", "name"): check_widget_name,
    ("widget_update", "info_url"): check_url,
    ("credentials", "email"): check_email,
}
ASCII = st.characters(codec="ascii")


@pytest.mark.slow  # 150 examples per field: bin/test, not bin/test --fast
@pytest.mark.parametrize(("schema", "field"), list(RULES), ids=lambda v: v)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_what_a_pattern_admits_in_ascii_the_rule_accepts(schema, field, data):
    """Drawn from the pattern (ASCII: a Unicode host name must also be valid IDNA, which the
    pattern leaves to the description), within the length limits: the rule accepts it."""
    keywords = spec(schema, field)
    value = data.draw(st.from_regex(keywords["pattern"], fullmatch=True, alphabet=ASCII)
                      .filter(lambda v: keywords.get("minLength", 0) <= len(v)
                              <= keywords.get("maxLength", 10**6)))
    assert accepts(RULES[(schema, field)], value), value


@pytest.mark.parametrize(("schema", "field"), list(RULES), ids=lambda v: v)
@settings(max_examples=150, deadline=None)
@given(value=st.text(alphabet=ASCII, max_size=40) | st.text(max_size=40))
def test_what_the_rule_accepts_the_pattern_admits(schema, field, value):
    """The validating schema checks the pattern too: it must never refuse a value the rule
    accepts (it would get a generic message)."""
    if accepts(RULES[(schema, field)], value):
        assert re.search(spec(schema, field)["pattern"], value), value


@pytest.mark.parametrize(("schema", "field", "value"), [
    ("widget_update", "info_url", "https://bücher.de/"),
    ("widget_update", "info_url", "HTTP://xn--bcher-kva.example.COM./a?b#c"),
    ("credentials", "email", "user@bücher.de"),
    ("credentials", "email", "ü.ser+tag@sub.example.travel"),
    ("widget_create", "name", "İ-wïdget_2"),
])
def test_valid_values_beyond_the_simple_ones_match(schema, field, value):
    assert accepts(RULES[(schema, field)], value)
    assert re.search(spec(schema, field)["pattern"], value)


@pytest.mark.parametrize(("schema", "field", "value"), [
    ("widget_update", "info_url", "http://a.localhost/"),
    ("widget_update", "info_url", "http://example.com:8080/"),
    ("widget_update", "info_url", "http://u@example.com/"),
    ("widget_update", "info_url", "http://1.2.3.4/"),
    ("widget_update", "info_url", "ftp://example.com/"),
    ("credentials", "email", "a..b@example.com"),
    ("credentials", "email", "a@localhost"),
    ("credentials", "email", ".a@example.com"),
    ("widget_create", "name", "a b"),
])
def test_refused_values_are_refused_by_the_pattern_too(schema, field, value):
    assert not accepts(RULES[(schema, field)], value)
    keywords = spec(schema, field)
    assert (not re.search(keywords["pattern"], value)
            or len(value) > keywords.get("maxLength", 10**6))


@settings(max_examples=150, deadline=None)
@given(page=st.integers(min_value=-10, max_value=10**101))
def test_the_page_the_document_admits_is_the_page_the_rule_accepts(page):
    """``page`` is documented as an integer (what a generated client sends, in decimal): the
    rule accepts exactly the integers the schema admits, and reads them as themselves."""
    if schema_valid("pagination", {"page": page}):
        assert parse_page(str(page)) == page
    else:
        assert not accepts(parse_page, str(page))
    assert parse_page("+0001") == 1  # and the lenient forms the description names


# -- the validator's schemas: every $ref resolved once, at start -------------------------------

@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_validator_walks_each_schema_with_its_references_resolved(name):
    by_id = {schema["$id"]: schema for schema in SCHEMAS.values()}
    flat = _inlined(SCHEMAS[name], by_id)
    assert "$ref" not in json.dumps(flat) and "$schema" not in json.dumps(flat)
    for field, node in SCHEMAS[name].get("properties", {}).items():
        if "$ref" in node:
            target = {k: v for k, v in spec(name, field).items() if k not in ("$id", "$schema")}
            annotations = {k: v for k, v in node.items() if k != "$ref"}
            assert flat["properties"][field] == {**target, **annotations}


@pytest.mark.parametrize("node, problem", [
    ({"$ref": "NoSuch.json"}, "NoSuch.json"),
    ({"$ref": "Page.json", "minimum": 3}, "['minimum']"),  # a sibling that would validate
])
def test_a_reference_the_validator_cannot_resolve_stops_the_start(node, problem):
    by_id = {schema["$id"]: schema for schema in SCHEMAS.values()}
    with pytest.raises(ValueError, match=re.escape(problem)):
        _inlined({"properties": {"x": node}}, by_id)


def test_a_recursive_reference_stops_the_start():
    loop = {"$id": "Loop.json", "properties": {"next": {"$ref": "Loop.json"}}}
    with pytest.raises(ValueError, match="Loop.json"):
        _inlined(loop, {"Loop.json": loop})
