"""Issue 21 item 6: three places where a random schemathesis run found the OpenAPI document
looser than the service. Each is pinned here: the document now says what the service does."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.helpers import API, WIDGETS, bearer
from widgetsvc import linear_re


@pytest.fixture
def doc(app):
    return app.get(f"{API}/openapi.json").json


def _component(doc, name: str) -> dict:
    return doc["components"]["schemas"][name]


def test_login_lists_the_lock_429(doc):
    responses = doc["paths"][f"{API}/auth/login"]["post"]["responses"]
    assert "429" in responses
    assert responses["429"]["headers"]["Retry-After"]["required"] is True


def test_an_empty_deadline_is_refused_by_the_document_as_by_the_service(doc, app, admin_token):
    deadline = _component(doc, "Deadline")
    assert deadline["minLength"] == 1
    resp = app.post_json(WIDGETS, {"name": "w", "info_url": "https://www.example.com",
                                   "deadline": ""}, headers=bearer(admin_token), status=400)
    assert list(resp.json["errors"]) == ["deadline"]


NON_LETTERS = ["\u00ad", "\u200b", "\u200d", "\u2028", "\u2060", "\ufeff", "\u00d7", "\u00b7",
               "\u00a0", "\u00bf", "\u2010", "\ufffd"]


@pytest.mark.parametrize("char", NON_LETTERS, ids=[f"U+{ord(c):04X}" for c in NON_LETTERS])
def test_a_name_the_service_refuses_does_not_match_the_documented_pattern(doc, app,
                                                                          admin_token, char):
    pattern = _component(doc, "WidgetName")["pattern"]
    name = f"soft{char}hyphen"
    assert not re.search(pattern, name)  # what Python clients and schemathesis read
    assert not linear_re.compile(pattern).search(name)  # what the service reads
    resp = app.put_json(f"{WIDGETS}/{quote(name)}", {"info_url": "https://www.example.com",
                                             "deadline": "2099-01-01"},
                        headers=bearer(admin_token), status=400)
    assert list(resp.json["errors"]) == ["name"]


def test_the_pattern_is_the_rule_wherever_it_claims_to_be(doc):
    """Latin-1, general punctuation and the specials: the pattern admits exactly the names
    the rule accepts."""
    pattern = linear_re.compile(_component(doc, "WidgetName")["pattern"])
    points = [*range(0x100), *range(0x2000, 0x2070), 0xFEFF, *range(0xFFF0, 0x10000)]
    for point in points:
        char = chr(point)
        assert bool(pattern.search(f"a{char}b")) == (char.isalnum() or char in "-_"), hex(point)
