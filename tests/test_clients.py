"""Clients generated from the live OpenAPI document (docs/API.md §8.9), with nothing edited.

The document ``bin/serve`` serves is handed, as a consumer would, to openapi-python-client (no
warning: no operation or schema skipped; the package imports) and to openapi-typescript (its
types compiled with ``tsc --strict`` against a consumer that passes integers for pages), and
the tutorial's flow runs through each client (``tests/clients/flow.py``, ``flow.ts``).
Redocly's recommended rules lint it with no error.

The tools' versions are pinned: openapi-python-client in setup.cfg's test extra, the npm tools
in ``tests/clients/package.json`` and its lock, installed once per lock under
``var/clients-<digest>`` (as root, Debian's ``nodejs`` and ``npm`` are installed first when
missing). The generated code lives in the test's temporary directory, never in the tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import API, PASSWORD
from tests.test_openapi import OPERATION_IDS
from widgetsvc.ops import apt

REPO = Path(__file__).resolve().parent.parent
CLIENTS = REPO / "tests" / "clients"
VENV_BIN = Path(sys.executable).parent
ADMIN = "clients-admin@example.com"
FLOW = ["register", "login", "current user", "create widget (admin)", "list a page",
        "list a cursor page, sorted and filtered", "get",
        "update with If-Match", "delete", "refresh", "logout", "refused after logout",
        "flow ok"]
# Node tools: no update check, no telemetry (the machine reaches only package registries).
NODE_ENV = {"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
            "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false",
            "npm_config_fund": "false", "npm_config_audit": "false"}


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **NODE_ENV, **(env or {})})


def _ensure_node() -> None:
    """Node and npm from Debian when missing (as root, like nginx); else the tests skip."""
    missing = [pkg for pkg, tool in (("nodejs", "node"), ("npm", "npm"))
               if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"{' and '.join(missing)} not installed and not root "
                    f"(as root: apt-get install nodejs npm)")
    apt.install(missing)


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """The folder whose node_modules holds the pinned npm tools (``npm ci`` of the lock)."""
    _ensure_node()
    lock = (CLIENTS / "package-lock.json").read_bytes()
    digest = hashlib.sha256((CLIENTS / "package.json").read_bytes() + lock).hexdigest()[:16]
    folder = REPO / "var" / f"clients-{digest}"
    folder.parent.mkdir(exist_ok=True)
    with open(REPO / "var" / ".clients.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one installer at a time (parallel runs)
        if not (folder / ".installed").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            for name in ("package.json", "package-lock.json"):
                shutil.copy(CLIENTS / name, folder / name)
            done = run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, timeout=600)
            assert done.returncode == 0, done.stdout + done.stderr
            (folder / ".installed").touch()
    return folder


@pytest.fixture
def live_document(live_server, users, tmp_path) -> tuple[str, Path]:
    """The served document, saved as a consumer downloads it, and the server's URL (with an
    administrator, ADMIN, to create widgets)."""
    users.create(ADMIN, PASSWORD, admin=True)
    url = f"{live_server.url}{API}/openapi.json"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (127.0.0.1 only)
        path = tmp_path / "openapi.json"
        path.write_bytes(resp.read())
    return live_server.url, path


IMPORT_ALL = """
import importlib, pkgutil, widgetsvc_client
names = [m.name for m in pkgutil.walk_packages(widgetsvc_client.__path__, "widgetsvc_client.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_the_python_client_generates_whole_and_runs_the_tutorial_flow(live_document, tmp_path):
    base_url, document = live_document
    package = tmp_path / "generated" / "widgetsvc_client"
    # ruff on PATH: the generator formats what it writes with it.
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    generated = run([str(VENV_BIN / "openapi-python-client"), "generate", "--path",
                     str(document), "--output-path", str(package), "--meta", "none",
                     "--fail-on-warning"], env=env)
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert "Warning" not in output and "will not be generated" not in output, output
    modules = {p.stem for p in package.glob("api/*/*.py") if p.stem != "__init__"}
    assert modules == {_snake(op) for op in OPERATION_IDS.values()}
    models = {p.stem for p in (package / "models").glob("*.py")}
    for name in ("credentials", "widget_create", "widget_update", "password_change", "refresh",
                 "user_patch_admin", "user_patch_disabled", "widget_page", "user_page",
                 "page_links", "widget", "token_body"):
        assert name in models, name

    on_path = {"PYTHONPATH": str(package.parent)}
    imported = run([sys.executable, "-c", IMPORT_ALL], env=on_path)  # every module imports
    assert imported.returncode == 0 and int(imported.stdout) > 40, imported.stderr

    flow = run([sys.executable, str(CLIENTS / "flow.py"), base_url, ADMIN, PASSWORD],
               env=on_path, timeout=120)
    assert flow.returncode == 0, flow.stdout + flow.stderr
    assert flow.stdout.splitlines() == FLOW, flow.stdout


TSCONFIG = {
    "compilerOptions": {
        "strict": True, "target": "ES2022", "module": "nodenext",
        "moduleResolution": "nodenext", "lib": ["ES2022", "DOM"], "types": ["node"],
        "skipLibCheck": True, "noEmitOnError": True, "outDir": "out",
    },
    "files": ["flow.ts"],
}


@contextlib.contextmanager
def _workdir(node_tools: Path, tmp_path: Path):
    """A folder inside ``node_tools`` (so that node and tsc find its node_modules)."""
    work = node_tools / f"run-{tmp_path.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_typescript_client_type_checks_strictly_and_runs_the_tutorial_flow(
        node_tools, live_document, tmp_path):
    base_url, document = live_document
    bin_dir = node_tools / "node_modules" / ".bin"
    with _workdir(node_tools, tmp_path) as work:
        generated = run([str(bin_dir / "openapi-typescript"), str(document), "-o",
                         str(work / "api.d.ts")])
        output = generated.stdout + generated.stderr
        assert generated.returncode == 0, output
        assert not re.search(r"warn|error", output, re.I), output
        shutil.copy(CLIENTS / "flow.ts", work / "flow.ts")
        (work / "tsconfig.json").write_text(json.dumps(TSCONFIG), encoding="utf-8")
        compiled = run([str(bin_dir / "tsc"), "-p", str(work)])
        # flow.ts also holds calls the types must refuse (each an @ts-expect-error)
        assert compiled.returncode == 0, compiled.stdout + compiled.stderr

        flow = run(["node", str(work / "out" / "flow.js"), base_url, ADMIN, PASSWORD],
                   cwd=work, timeout=120)
        assert flow.returncode == 0, flow.stdout + flow.stderr
        assert flow.stdout.splitlines() == FLOW, flow.stdout


def test_redocly_recommended_lint_reports_no_error(node_tools, app, tmp_path):
    """The served document (the same bytes bin/serve serves), Redocly's recommended rules."""
    document = tmp_path / "openapi.json"
    document.write_bytes(app.get(f"{API}/openapi.json").body)
    linted = run([str(node_tools / "node_modules" / ".bin" / "redocly"), "lint", str(document),
                  "--extends=recommended", "--format=json"], cwd=tmp_path)
    report = json.loads(linted.stdout[linted.stdout.index("{"):])
    problems = [(p["ruleId"], p["severity"], p["message"]) for p in report["problems"]]
    print(f"redocly: {report['totals']}")
    assert report["totals"]["errors"] == 0, problems
    assert linted.returncode == 0, linted.stderr
