"""The real ``bin/add-user`` (docs/API.md §7) as a subprocess, against a fresh migrated database."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
import uuid

import pytest
import webtest

from tests.helpers import API, SECRET, bearer
from widgetsvc.app import create_app
from widgetsvc.config import Config
from widgetsvc.db import Database
from widgetsvc.ops.localdb import REPO_ROOT
from widgetsvc.ops.migrate import migrate

ADD_USER = str(REPO_ROOT / "bin" / "add-user")
PASSWORD = "Secret-pass-1"
USER_LINE = re.compile(
    r" <User email=(?P<email>\S+), "
    r"public_id=(?P<public_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}), "
    r"admin=(?P<admin>True|False)>"
)


@pytest.fixture(scope="module")
def add_user_db(pg_cluster):
    name = f"adduser_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    migrate(url, log=lambda _m: None)
    database = Database(url, min_size=1, max_size=2)
    database.pool.open(wait=True, timeout=10)
    yield url, database
    database.close()
    pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def url(add_user_db) -> str:
    return add_user_db[0]


@pytest.fixture(scope="module")
def database(add_user_db) -> Database:
    return add_user_db[1]


@pytest.fixture(scope="module")
def api(url, database):
    config = Config.from_env({
        "DATABASE_URL": url, "SECRET_KEY": SECRET, "WIDGETSVC_ENV": "test", "BCRYPT_ROUNDS": "4",
    })
    return webtest.TestApp(create_app(config, db=database))


def email() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}@example.com"


def child_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update({"DATABASE_URL": url, "WIDGETSVC_ENV": "test", "BCRYPT_ROUNDS": "4"})
    return env


def add_user(url: str, *args: str, stdin: str = PASSWORD + "\n"):
    return subprocess.run(
        [ADD_USER, *args], input=stdin, env=child_env(url), capture_output=True, text=True,
        timeout=120, check=False,
    )


def test_admin_from_stdin_is_added_and_can_log_in(url, database, api):
    address = email()
    result = add_user(url, "--admin", "--password-stdin", address)

    assert (result.returncode, result.stderr) == (0, "")
    head, user_line, tail = result.stdout.split("\n")
    assert head == "Successfully added new admin user:"
    assert tail == ""
    shown = USER_LINE.fullmatch(user_line)
    assert shown and shown["email"] == address and shown["admin"] == "True"

    stored = database.one("user_by_email", email=address)
    assert str(stored["public_id"]) == shown["public_id"]
    assert stored["admin"] is True

    login = api.post_json(f"{API}/auth/login", {"email": address, "password": PASSWORD},
                          status=200)
    assert login.json["message"] == "successfully logged in"
    me = api.get(f"{API}/auth/user", headers=bearer(login.json["access_token"]), status=200)
    assert (me.json["email"], me.json["public_id"], me.json["admin"]) == (
        address, shown["public_id"], True,
    )
    api.post_json(f"{API}/auth/login", {"email": address, "password": PASSWORD + "x"},
                  status=401)


def test_plain_user_from_stdin(url, database, api):
    address = email().replace("cli-", "Plain.")
    result = add_user(url, "--password-stdin", address, stdin="Another-pass-2\n")

    assert (result.returncode, result.stderr) == (0, "")
    head, user_line, _ = result.stdout.split("\n")
    assert head == "Successfully added new user:"
    shown = USER_LINE.fullmatch(user_line)
    assert shown and shown["email"] == address and shown["admin"] == "False"
    assert database.one("user_by_email", email=address)["admin"] is False
    token = api.post_json(f"{API}/auth/login",
                          {"email": address.lower(), "password": "Another-pass-2"},
                          status=200).json["access_token"]
    assert api.get(f"{API}/auth/user", headers=bearer(token)).json["admin"] is False


def test_duplicate_in_another_case_is_refused_with_exit_1(url, database):
    address = email()
    assert add_user(url, "--password-stdin", address).returncode == 0
    before = database.one("user_by_email", email=address)

    shouted = address.upper()
    result = add_user(url, "--admin", "--password-stdin", shouted)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Error: {shouted} is already registered\n"
    assert database.one("user_by_email", email=address) == before  # still not an admin


@pytest.mark.parametrize(("address", "password", "message"), [
    ("not-an-email", PASSWORD, "not-an-email is not a valid email"),
    ("someone@localhost", PASSWORD, "someone@localhost is not a valid email"),
    (None, "short", "Password must be at least 8 characters."),
    (None, "a" * 73, "Password must be at most 72 bytes."),
    (None, "\u00e9" * 36 + "a", "Password must be at most 72 bytes."),  # 37 chars, 73 bytes
])
def test_invalid_input_is_refused_with_the_api_message(url, database, address, password,
                                                       message):
    address = address or email()
    result = add_user(url, "--password-stdin", address, stdin=password + "\n")

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Error: {message}\n"
    assert database.one("user_by_email", email=address) is None


def test_a_72_byte_password_is_accepted(url, api):
    address = email()
    password = "\u00e9" * 36  # 36 characters, exactly 72 bytes in UTF-8
    result = add_user(url, "--password-stdin", address, stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    api.post_json(f"{API}/auth/login", {"email": address, "password": password}, status=200)


# -- the interactive prompt, under a pseudo-terminal ------------------------------------------

class Terminal:
    """``bin/add-user`` running with a pseudo-terminal as its controlling terminal."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once, never return into pytest
            try:
                os.execve(argv[0], argv, env)  # noqa: S606 (a fixed path, no shell)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = b""
        self.status: int | None = None

    def read_until(self, marker: bytes, timeout: float = 60.0) -> None:
        start = len(self.output)
        deadline = time.monotonic() + timeout
        while marker not in self.output[start:]:
            if not self._read(deadline):
                raise AssertionError(f"{marker!r} never came; got {self.output!r}")

    def _read(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], remaining)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            pass
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            time.sleep(0.05)
        raise AssertionError(f"bin/add-user did not exit; output {self.output!r}")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


def test_interactive_prompt_asks_again_on_mismatch(url, database, api):
    address = email()
    terminal = Terminal([ADD_USER, address], child_env(url))
    try:
        terminal.read_until(b"Password: ")
        terminal.type("First-pass-1\n")
        terminal.read_until(b"Repeat for confirmation: ")
        terminal.type("Other-pass-2\n")
        terminal.read_until(b"Password: ")  # asked again, from the start
        terminal.type("Matching-pass-3\n")
        terminal.read_until(b"Repeat for confirmation: ")
        terminal.type("Matching-pass-3\n")
        status = terminal.wait()
    finally:
        terminal.close()

    text = terminal.output.decode().replace("\r\n", "\n")
    assert status == 0, text
    assert text.count("Password: ") == 2
    assert text.count("Repeat for confirmation: ") == 2
    assert "Error: the two entered values do not match\n" in text
    assert "Successfully added new user:\n <User email=" in text
    for typed in ("First-pass-1", "Other-pass-2", "Matching-pass-3"):
        assert typed not in text  # hidden: never echoed
    assert database.one("user_by_email", email=address)["admin"] is False
    api.post_json(f"{API}/auth/login", {"email": address, "password": "Matching-pass-3"},
                  status=200)
    api.post_json(f"{API}/auth/login", {"email": address, "password": "First-pass-1"},
                  status=401)


def test_without_a_terminal_and_without_password_stdin_it_says_what_to_do(url):
    result = subprocess.run(
        [ADD_USER, email()], stdin=subprocess.DEVNULL, env=child_env(url),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "widgetsvc: no terminal to ask for the password: use --password-stdin")
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_clear_line_not_a_traceback(tmp_path):
    unreachable = f"postgresql://nobody@/none?host={tmp_path}&connect_timeout=1"
    result = add_user(unreachable, "--password-stdin", email())
    assert result.returncode == 1
    assert result.stderr == (
        f"widgetsvc: DATABASE_URL={unreachable}: cannot connect to Unix socket "
        f"{tmp_path}/.s.PGSQL.5432: No such file or directory (a libpq URL of a reachable "
        "PostgreSQL, e.g. postgresql://user@host:5432/dbname)\n")
    assert "Traceback" not in result.stderr
