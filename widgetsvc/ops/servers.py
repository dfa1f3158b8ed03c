"""The WSGI server bin/serve runs the app under: gunicorn (the default) or Granian (issue 25).

Both serve the same unchanged ``widgetsvc.wsgi:app`` behind the same nginx front, on a Unix
socket only nginx reaches (or, with ``--direct``, alone on HOST:PORT). This module only builds
their command lines and environments, so that cli.serve() stays one small branch.

Granian cannot drop privileges itself, and it cannot be started as the app user either when
the interpreter lives where that user cannot read (a Python under /root). So it runs as
gunicorn does: its main process, as root, binds the socket in root's runtime directory and
manages the workers; each worker loads ``widgetsvc.ops.granian_app``, which loads the code as root,
then becomes the app user (app_user()) before the app (its pool, its hashing slots) is
created.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from widgetsvc.config import ConfigError
from widgetsvc.ops import localdb, plumbing
from widgetsvc.ops.settings import DEFAULT_GRANIAN_APP, ToolSettings

# Pinned: a new release must not change what is measured and tested unseen (setup.cfg's
# ``granian`` extra says the same; tests/test_servers.py keeps them in step).
GRANIAN_REQUIREMENT = "granian==2.8.9"

# Granian's own settings that bin/serve chooses unless the operator set them (granian reads
# every GRANIAN_* variable itself). One Python thread per worker, as gunicorn's sync workers,
# and at most 16 requests taken in per worker: many threads per worker take in every request
# at once and queue them on the GIL and on the 4-connection pool (DB_POOL_MAX), which is where
# Granian's higher p99 came from (docs/benchmarks.md, "Granian's threads and backpressure").
GRANIAN_DEFAULTS = {
    "GRANIAN_BLOCKING_THREADS": "1",
    "GRANIAN_BACKPRESSURE": "16",
}


def chosen(tools: ToolSettings, flag: str | None = None) -> str:
    """``--server`` if given, else ``WIDGETSVC_SERVER`` (gunicorn by default)."""
    return flag or tools.server


def granian_executable(*, install: bool = True) -> str:
    """The ``granian`` next to this interpreter; installed (pinned) with pip when missing."""
    path = Path(sys.executable).parent / "granian"
    if path.exists() or shutil.which("granian") and _importable():
        return str(path) if path.exists() else str(shutil.which("granian"))
    if not install:
        raise ConfigError("WIDGETSVC_SERVER=granian: granian is not installed "
                          "(pip install 'widgetsvc[granian]')")
    print(f"widgetsvc: installing {GRANIAN_REQUIREMENT} (widgetsvc[granian]) ...",
          file=sys.stderr, flush=True)
    done = subprocess.run(  # noqa: S603 (our own interpreter, a pinned requirement)
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
         GRANIAN_REQUIREMENT], stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0 or not path.exists():
        raise ConfigError(f"installing {GRANIAN_REQUIREMENT} failed (pip's output "
                          "above); install it with pip install 'widgetsvc[granian]'")
    return str(path)


def _importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("granian") is not None


def granian_argv(executable: str, tools: ToolSettings, *, uds: Path | None) -> list[str]:
    """Granian's command line: WSGI, HTTP/1 (what nginx speaks upstream), no websockets, the
    same workers, log level and graceful timeout as gunicorn's settings; on ``uds`` behind the
    front, else alone on HOST:PORT."""
    graceful = max(1, tools.graceful_timeout)
    # The socket is in bin/serve's runtime directory, which only nginx's group may enter (as
    # root; otherwise only this user): nginx, whoever it runs as, may connect.
    where = (["--uds", str(uds), "--uds-permissions", str(0o666)] if uds is not None
             else ["--host", tools.host.strip("[]"), "--port", str(tools.port)])
    level = tools.log_level
    return [executable, "--interface", "wsgi", "--http", "1", "--no-ws",
            "--workers", str(tools.workers), *where,
            "--log-level", level if level in _GRANIAN_LEVELS else "info", "--no-access-log",
            "--workers-kill-timeout", str(graceful),
            "widgetsvc.ops.granian_app:app"]


_GRANIAN_LEVELS = ("critical", "error", "warning", "info", "debug")


def granian_env(env: Mapping[str, str], app: str | None = None) -> dict[str, str]:
    """bin/serve's environment plus Granian's tuned defaults (an operator's GRANIAN_* wins),
    and the app its workers load (granian_app.py; bin/bench's floor names another)."""
    return {**GRANIAN_DEFAULTS, **env, "WIDGETSVC_GRANIAN_APP": app or DEFAULT_GRANIAN_APP}


def upstream_keepalive(kind: str) -> int:
    """Idle connections nginx keeps to the server: none for gunicorn's sync workers (they close
    each one), some for Granian, which keeps them open (one connect less per request)."""
    return 32 if kind == "granian" else 0


def app_user(tools: ToolSettings | None = None) -> pwd.struct_passwd | None:
    """As root: the unprivileged user gunicorn's workers (the application) run as,
    ``WIDGETSVC_APP_USER``, else the private clusters' owner (``postgres``, else ``nobody``),
    who reaches their sockets. It must be able to read the code. Otherwise None: the
    application runs as whoever starts it."""
    if os.geteuid() != 0:
        return None
    tools = tools or ToolSettings.from_env()
    # A named user must exist and not be root (one line naming the setting otherwise).
    user = (plumbing.os_user("WIDGETSVC_APP_USER", tools.app_user) if tools.app_user
            else localdb.cluster_owner(tools))
    for code in (Path(__file__).resolve().parents[1], Path(sys.prefix).resolve()):
        if localdb.reachable_dir(code, user) != code:
            raise ConfigError(
                f"as root, the application runs as {user.pw_name}, who cannot read {code}: "
                "put the clone (and its .venv) where that user can read it, name another "
                "user in WIDGETSVC_APP_USER, or run bin/serve as an unprivileged user")
    return user
