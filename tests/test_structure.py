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


PACKAGE = Path(__file__).resolve().parent.parent / "widgetsvc"
# What starts processes or installs packages: the tools' business, never the service's.
_TOOLING_IMPORTS = ("widgetsvc.ops", "subprocess", "multiprocessing", "pty", "shutil")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _core_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "ops" not in p.relative_to(PACKAGE).parts]


def test_the_service_core_never_imports_the_tools():
    """The core (everything but widgetsvc/ops) runs inside gunicorn's workers: it must not
    reach for the code that starts PostgreSQL, nginx or a cluster, or installs packages."""
    assert len(_core_files()) > 20
    offending = {str(path.relative_to(PACKAGE)): sorted(
                     name for name in _imports(path)
                     if any(name == bad or name.startswith(bad + ".") for bad in _TOOLING_IMPORTS))
                 for path in _core_files()}
    assert {path: names for path, names in offending.items() if names} == {}


@pytest.mark.e2e
def test_the_wsgi_app_loads_no_tooling_module(tmp_path):
    """What ``widgetsvc.wsgi:app`` imports, measured: no module of widgetsvc.ops is loaded."""
    import os
    import subprocess
    import sys

    probe = ("import sys, widgetsvc.wsgi; "
             "print('\\n'.join(m for m in sys.modules if m.startswith('widgetsvc')))")
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
           "SECRET_KEY": "s" * 40, "LOG_LEVEL": "CRITICAL"}
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, cwd=PACKAGE.parent,
                            capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert "widgetsvc.app" in loaded
    assert [m for m in loaded if m.startswith("widgetsvc.ops")] == []


_STATEMENT_CALL = re.compile(r"\.(one|all|execute|transaction|session)\(|checked_rows\(")
_SENTINELS = re.compile(r"""\[["'](total_items|found|deleted|prior_\w+|free|revoked|etag)["']\]""")


def test_responders_reach_the_database_only_through_their_store():
    """One data-access style, responder → store → db: no resource module runs a statement or
    reads a statement's sentinel columns itself (the stores decode them, once)."""
    modules = sorted(PACKAGE.glob("*/resources.py"))
    assert {p.parent.name for p in modules} >= {"auth", "users", "widgets"}
    offenders = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
                 for path in modules
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if _STATEMENT_CALL.search(line) or _SENTINELS.search(line)]
    assert offenders == []


def _ops_import_graph() -> dict[str, set[str]]:
    """widgetsvc.ops module -> the widgetsvc.ops modules it imports (at any depth)."""
    modules = {}
    for path in (PACKAGE / "ops").rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {name: {other for other in _imports(path) if other in modules and other != name}
            for name, path in modules.items()}


def test_the_tools_import_each_other_one_way_only():
    """No import circle among the tools (issue 20): parts <- cluster <- backup, upgrade, cli."""
    graph = _ops_import_graph()
    assert "widgetsvc.ops.safefs" in graph["widgetsvc.ops.plumbing"]  # the graph is read
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        for other in sorted(graph[name]):
            if other in path:
                cycles.append([*path[path.index(other):], other])
            elif other not in done:
                visit(other, [*path, other])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_every_cluster_module_reads_in_one_sitting():
    """One small module per part: none of widgetsvc/ops/cluster grows past 200 lines."""
    sizes = {path.name: len(path.read_text().splitlines())
             for path in (PACKAGE / "ops" / "cluster").glob("*.py")}
    assert len(sizes) > 10
    assert {name: lines for name, lines in sizes.items() if lines > 200} == {}
