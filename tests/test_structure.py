"""House rules that code review alone would not keep: fail-closed auth declarations, SQL only
in sql/, values only as parameters."""

import re
from pathlib import Path

import pytest

from widgetsvc.auth.middleware import ADMIN, NONE, TOKEN, check_declarations
from widgetsvc.db import QUERIES_DIR, load_queries

PACKAGE = Path(__file__).resolve().parent.parent / "widgetsvc"


class Undeclared:
    auth = {"GET": TOKEN}

    def on_get(self, req, resp): ...

    def on_delete(self, req, resp): ...


class Declared:
    auth = {"GET": NONE, "POST": ADMIN}

    def on_get(self, req, resp): ...

    def on_post(self, req, resp): ...


def test_a_responder_without_an_auth_level_is_refused_at_startup():
    with pytest.raises(TypeError, match="Undeclared.on_delete declares no auth level"):
        check_declarations(Undeclared())
    check_declarations(Declared())


_SQL_WORDS = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|SHOW\s+\w+)\b")


def test_the_package_holds_no_sql_text():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _SQL_WORDS.search(line)
    ]
    assert offenders == []


def test_every_query_takes_values_only_as_named_parameters():
    for name, text in load_queries(QUERIES_DIR).items():
        code = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        assert "{" not in code and "%s" not in code, name  # no str.format / positional slots
        assert re.findall(r"%\((\w+)\)s", code) or name in {
        "health_check", "purge_revoked_tokens", "purge_sessions", "purge_idempotency_keys"}, name
