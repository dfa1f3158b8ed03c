"""Shared fixtures: a throwaway PostgreSQL cluster for the run, the app, users and tokens.

The cluster lives in var/test-<pid>/ (never the development one), its database is migrated
with the real ``bin/migrate`` code, and every test starts from empty tables.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import webtest
from hypothesis import settings as hypothesis_settings

from widgetsvc import timefmt
from widgetsvc.app import create_app
from widgetsvc.auth.users import Users
from widgetsvc.config import Config
from widgetsvc.db import SQL_DIR, Database, load_queries
from widgetsvc.localdb import REPO_ROOT, VAR_DIR, LocalCluster
from widgetsvc.migrate import migrate

# In CI the property-based tests (hypothesis, schemathesis) run a fixed, derandomized set of
# examples: a submission is judged on the same inputs that passed here. Locally each run
# explores new ones (and anything found becomes a pinned regression test).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "Secret-pass-1"
API = "/api/v1"


@pytest.fixture(scope="session")
def pg_cluster():
    os.environ.setdefault("WIDGETSVC_PG_FSYNC", "off")
    cluster = LocalCluster(VAR_DIR / f"test-{os.getpid()}").start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def database_url(pg_cluster) -> str:
    url = pg_cluster.create_database("widgetsvc_test")
    migrate(url, log=lambda _msg: None)
    return url


@pytest.fixture(scope="session")
def config(database_url) -> Config:
    return Config.from_env({
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "WIDGETSVC_ENV": "test",
        "BCRYPT_ROUNDS": "4",
    })


@pytest.fixture(scope="session")
def db(config):
    database = Database(config.database_url, min_size=1, max_size=4)
    database.pool.open(wait=True, timeout=10)
    yield database
    database.close()


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Every test that touches the database starts from empty tables."""
    if "db" in request.fixturenames or "app" in request.fixturenames:
        database = request.getfixturevalue("db")
        reset = load_queries(SQL_DIR / "testing")["reset_all"]
        with database.pool.connection() as conn:
            conn.execute(reset)
    yield


@pytest.fixture
def clock():
    return timefmt.Clock()


@pytest.fixture
def app(config, db, clock):
    return webtest.TestApp(create_app(config, db=db, clock=clock))


@pytest.fixture
def users(db, config) -> Users:
    return Users(db, config.bcrypt_rounds)


def login(app, email: str, password: str = PASSWORD) -> str:
    resp = app.post_json(f"{API}/auth/login", {"email": email, "password": password})
    return resp.json["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user_token(app, users) -> str:
    users.create("user@example.com", PASSWORD, admin=False)
    return login(app, "user@example.com")


@pytest.fixture
def admin_token(app, users) -> str:
    users.create("admin@example.com", PASSWORD, admin=True)
    return login(app, "admin@example.com")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The real ``bin/serve`` (gunicorn) on a free port, against the test database."""

    def __init__(self, database_url: str, log_path: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET,
            "WIDGETSVC_ENV": "test",
            "BCRYPT_ROUNDS": "4",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> LiveServer:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(REPO_ROOT / "bin" / "serve")], env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bin/serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"bin/serve did not listen: {self.log_path.read_text()[-2000:]}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def live_server(database_url, db, tmp_path):
    server = LiveServer(database_url, tmp_path / "serve.log").start()
    yield server
    server.stop()

