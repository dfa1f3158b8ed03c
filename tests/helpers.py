"""Plain helpers the test files share: the contract's paths and messages, logging in, the real
``bin/serve`` on a free port, forging tokens, asserting 401 answers, walking query plans.

Fixtures live in conftest.py; this module holds no fixture. The messages are written out here,
not imported from the service, so that a test fails when the service's wording drifts from
docs/API.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from tests.live_http import call
from widgetsvc.auth.keys import hmac_key
from widgetsvc.ops import plumbing
from widgetsvc.ops.localdb import REPO_ROOT

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "Secret-pass-1"

# -- paths (docs/API.md §2) --------------------------------------------------------------------

API = "/api/v1"
REGISTER = f"{API}/auth/register"
LOGIN = f"{API}/auth/login"
USER = f"{API}/auth/user"
LOGOUT = f"{API}/auth/logout"
WIDGETS = f"{API}/widgets"

# -- messages (docs/API.md §3, §4) -------------------------------------------------------------

USER_REALM = "registered_users@mydomain.com"
ADMIN_REALM = "admin_users@mydomain.com"
INVALID = "Invalid token. Please log in again."
EXPIRED = "Access token expired. Please log in again."
REVOKED = "Token blacklisted. Please log in again."
NOT_ADMIN = "You are not an administrator"
VALIDATION_FAILED = "Input payload validation failed"
MISSING = "Missing required parameter in the post body"


# -- clients -----------------------------------------------------------------------------------

def login(app, email: str, password: str = PASSWORD) -> str:
    """An access token for ``email`` through the WebTest ``app``."""
    resp = app.post_json(LOGIN, {"email": email, "password": password})
    return resp.json["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email() -> str:
    return f"u{uuid.uuid4().hex[:10]}@example.com"


class LiveServer:
    """The real ``bin/serve`` (nginx in front of gunicorn) on a free port, against the test
    database."""

    def __init__(self, database_url: str, log_path: Path, **env: str):
        self.port = plumbing.free_port()
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
            "AUTH_RATE_LIMIT": "0",  # tests register many users from one address
            # Parallel clients log in at once: no 503 for busy hashing here (the hashing gate's
            # own tests, tests/test_front_door.py, ask for the defaults with "").
            "HASH_SLOTS": "16",
            "AUTH_IN_FLIGHT": "0",
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> LiveServer:
        """Starts bin/serve and waits until it listens (generous: on a loaded 2-core machine a
        production-cost start, which hashes its dummy password per worker, can take long)."""
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(REPO_ROOT / "bin" / "serve")], env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        proc = self.proc
        if plumbing.poll(lambda: plumbing.tcp_open(self.port), timeout=timeout, interval=0.1,
                         give_up=lambda: proc.poll() is not None):
            return self
        if proc.poll() is not None:
            raise RuntimeError(f"bin/serve exited: {self.log_path.read_text()[-2000:]}")
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

    def wait_healthy(self, timeout: float = 60.0) -> LiveServer:
        """Waits until the health probe answers 200 through the front."""
        healthy = plumbing.poll(
            lambda: call(self, "GET", f"{API}/health", timeout=5).status == 200,
            timeout=timeout, interval=0.1)
        assert healthy, self.log()[-3000:]
        return self


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def processes(*, parent: int | None = None, group: int | None = None) -> dict[int, str]:
    """Live (not zombie) processes whose parent is ``parent``, or in process group ``group``:
    pid -> command line."""
    pids = plumbing.children(parent) if parent is not None else plumbing.group_members(group)
    return {pid: command_line(pid) for pid in pids}


# -- forging tokens (docs/API.md §6) -----------------------------------------------------------

DROP = object()  # a claim (or header) given this value is left out
# The kid header of a token signed with SECRET (docs/API.md §8.6).
KID = hmac_key(SECRET).kid


def forged_sid(public_id) -> str:
    """The id of the live session every user made through the ``users`` fixture has (see
    conftest.py): a forged token for that user names it in ``sid`` (§8.4: a token must name a
    live session)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"widgetsvc-test-session:{public_id}"))


def now_ts() -> int:
    return int(datetime.now(UTC).timestamp())


def claims_for(public_id, **overrides: Any) -> dict[str, Any]:
    """The claims of a valid 15-minute token for ``public_id``; ``overrides`` replace or add
    claims, and a claim set to ``DROP`` is left out."""
    now = now_ts()
    values = {"exp": now + 900, "iat": now, "sub": str(public_id), "admin": False,
              "jti": uuid.uuid4().hex, "sid": forged_sid(public_id)}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not DROP}


def forge(claims: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256",
          drop: tuple[str, ...] = (), kid: Any = KID) -> str:
    """A token signed by PyJWT, as the service signs them (without the ``drop`` claims; no
    ``kid`` header with ``kid=DROP``)."""
    payload = {k: v for k, v in claims.items() if k not in drop}
    headers = {"typ": "JWT"} if kid is DROP else {"typ": "JWT", "kid": kid}
    return jwt.encode(payload, secret, algorithm=algorithm, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: dict | bytes) -> str:
    """A JWT segment: a dict as compact JSON, or raw JSON text given as bytes."""
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url(raw)


def sign(header: dict | bytes, payload: dict | bytes, key: bytes = SECRET.encode(),
         digest=hashlib.sha256) -> str:
    """A token built by hand: any header, any payload, an HMAC signature over both. A dict
    header without a ``kid`` gets the service's (``"kid": DROP`` leaves it out)."""
    if isinstance(header, dict):
        header = {k: v for k, v in {**header, "kid": header.get("kid", KID)}.items()
                  if v is not DROP}
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def segment_json(token: str, index: int) -> dict:
    """Segment ``index`` of a token, decoded (0: header, 1: payload)."""
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# -- 401 and 403 answers (docs/API.md §4) ------------------------------------------------------

def challenge(realm: str, message: str | None = None, error: str = "invalid_token") -> str:
    """The ``WWW-Authenticate`` value: the bare challenge, or one with an error."""
    value = f'Bearer realm="{realm}"'
    if message is not None:
        value += f', error="{error}", error_description="{message}"'
    return value


def assert_token_error(resp, message: str, realm: str = USER_REALM) -> None:
    """A WebTest response is the 401 of a bad, expired or revoked token, exactly."""
    assert resp.status_int == 401
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json == {"message": message}
    assert resp.headers["WWW-Authenticate"] == challenge(realm, message)


def assert_no_token(resp, realm: str = USER_REALM) -> None:
    """A WebTest response is the 401 for no credentials, exactly."""
    assert resp.status_int == 401
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json == {"message": "Unauthorized"}
    assert resp.headers["WWW-Authenticate"] == challenge(realm)


# -- query plans -------------------------------------------------------------------------------

def plan_nodes(plan: dict):
    """Every node of an ``EXPLAIN (FORMAT JSON)`` plan, depth first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)
