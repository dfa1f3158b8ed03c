"""The package as a user installs it (``pip install .``, not editable): a wheel built from the
repository's files, installed into a clean venv outside the checkout, migrates a throwaway
database and serves real requests that run named queries.

Dependencies: the wheel goes in with ``--no-deps --no-index``, and the clean venv reaches the
dependencies already installed for this test run through a ``.pth`` line naming this
interpreter's site-packages (a ``.pth`` file's plain path is added to ``sys.path``, but the
``.pth`` files inside that directory, such as the checkout's editable install, are not run, so
``widgetsvc`` can only come from the wheel). That needs no network beyond the build's own
setuptools (build isolation, from pip's cache or PyPI), uses the very versions the suite tests,
and ``pip check`` then proves the wheel's declared requirements are met by them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import API, PASSWORD, SECRET
from widgetsvc.ops import plumbing
from widgetsvc.ops.localdb import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# What a clone holds besides the repository's own files: never copied into the build.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".ruff_cache", "test-output",
)


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The clean venv (its python) with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO_ROOT, source, ignore=_NOT_SOURCES)  # the build writes into its tree
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", work / "dist", source, cwd=work)
    (wheel,) = (work / "dist").glob("widgetsvc-*.whl")

    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=work)
    python = venv / "bin" / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                cwd=work).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "widgetsvc-test-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--disable-pip-version-check", wheel, cwd=work)
    _run(python, "-m", "pip", "check", "--disable-pip-version-check", cwd=work)
    return python


@pytest.fixture
def throwaway_url(pg_cluster):
    name = f"widgetsvc_wheel_{os.getpid()}"
    pg_cluster.drop_database(name)
    yield pg_cluster.create_database(name)
    pg_cluster.drop_database(name)


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    return {**env, "DATABASE_URL": url, "SECRET_KEY": SECRET, "WIDGETSVC_ENV": "test",
            "BCRYPT_ROUNDS": "4", **extra}


def _request(url: str, method: str = "GET", body: dict | None = None,
             token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 (127.0.0.1 only)
        url, method=method, headers=headers,
        data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_installed_wheel_migrates_and_serves_from_outside_the_checkout(
        installed, throwaway_url, tmp_path):
    elsewhere = tmp_path / "elsewhere"  # the working directory: not the checkout
    elsewhere.mkdir()
    env = _env(throwaway_url)

    where = _run(installed, "-c", "import widgetsvc, widgetsvc.db as db; "
                 "print(widgetsvc.__file__); print(len(db.load_queries()))",
                 cwd=elsewhere, env=env).stdout.split()
    assert not Path(where[0]).is_relative_to(REPO_ROOT), where  # the wheel, not the checkout
    assert int(where[1]) > 0, "the installed package finds no named query"

    # The nginx front's template ships too: a deployment renders its config from the package.
    rendered = _run(installed, "-c", "from widgetsvc.ops import front; print(front.TEMPLATE); "
                    "print(front.render(['unix:/run/w/g.sock'], '127.0.0.1:8080', '/run/w'))",
                    cwd=elsewhere, env=env).stdout
    template, config = rendered.split("\n", 1)
    assert not Path(template).is_relative_to(REPO_ROOT), template
    assert "listen 127.0.0.1:8080;" in config and "server unix:/run/w/g.sock;" in config
    assert "{{" not in config

    migrated = _run(installed, "-m", "widgetsvc.ops.migrate", cwd=elsewhere, env=env)
    assert "applied 0001_users.sql" in migrated.stdout, migrated.stdout

    port = plumbing.free_port()
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(installed), "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "widgetsvc.wsgi:app"],
            cwd=elsewhere, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}{API}"
        status, body = _request(f"{base}/auth/register", "POST",
                                {"email": "wheel@example.com", "password": PASSWORD})
        assert status == 201, body  # insert_user
        status, body = _request(f"{base}/widgets", token=body["access_token"])
        assert (status, body["total_items"]) == (200, 0), body  # widget_page
        status, body = _request(f"{base}/openapi.json")  # the packaged schemas
        assert status == 200
        assert {"WidgetCreate", "WidgetName"} <= set(body["components"]["schemas"])
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
