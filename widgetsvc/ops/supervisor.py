"""``bin/serve``'s process: gunicorn, and nginx in front of it, as one unit.

Both children stay in bin/serve's process group and in the foreground. SIGTERM or SIGINT stops
both gracefully (nginx first, so it finishes the requests in flight, then gunicorn); if either
child dies, the other is stopped and bin/serve exits non-zero. Nothing is left running. SIGHUP
reloads gunicorn (its own graceful reload: new workers start with the code on disk, the old ones
finish their requests and exit; the listening socket stays open, so no request is refused).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from widgetsvc.ops import plumbing

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value)
    except (OSError, AttributeError):  # not Linux
        pass


def _die_with_parent() -> None:
    """In a child, before exec: get SIGTERM if bin/serve itself is killed (SIGKILL)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def preload_code() -> None:
    """Import, in gunicorn's master (as root), what its unprivileged workers would otherwise
    import from files that user may not be able to read: the app and its libraries, and the
    standard library's codecs, which load on first use."""
    import encodings
    import importlib
    import pkgutil

    import widgetsvc.app  # noqa: F401  (not widgetsvc.wsgi: that creates the app)
    import widgetsvc.logs  # noqa: F401

    for module in pkgutil.iter_modules(encodings.__path__):
        with contextlib.suppress(ImportError):  # some codecs need what this system lacks
            importlib.import_module(f"encodings.{module.name}")


def _say(message: str) -> None:
    print(f"widgetsvc: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, graceful_timeout: float = 30.0):
        self.graceful_timeout = graceful_timeout
        self.children: dict[str, subprocess.Popen] = {}
        self.stop_requested = False
        self.reload_requested = False

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              user: int | None = None, group: int | None = None) -> subprocess.Popen:
        kwargs: dict = {}
        if user is not None:
            kwargs = {"user": user, "group": group, "extra_groups": []}
        proc = subprocess.Popen(  # noqa: S603 (our own argv)
            argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,  # noqa: PLW1509
            **kwargs,
        )
        self.children[name] = proc
        return proc

    def _on_signal(self, signum: int, _frame) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stop_requested = True

    def reload(self) -> None:
        """SIGHUP: gunicorn replaces its workers gracefully (README, "Upgrades")."""
        self.reload_requested = False
        proc = self.children.get("gunicorn")
        if proc is not None and proc.poll() is None:
            _say("SIGHUP: reloading gunicorn's workers")
            proc.send_signal(signal.SIGHUP)

    def install_signal_handlers(self) -> None:
        # Orphans of our children (workers of a master that died) become ours, to stop.
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _give_up(self) -> bool:
        return self.stop_requested or self._dead_child() is not None

    def wait_for_socket(self, path: Path, timeout: float = 60.0) -> bool:
        """True once gunicorn accepts connections on ``path`` (False: stop or a child died)."""
        if plumbing.poll(lambda: plumbing.unix_open(path), timeout=timeout, interval=0.05,
                         give_up=self._give_up):
            return True
        if not self._give_up():
            _say(f"gunicorn did not listen on {path} within {timeout:.0f} s")
        return False

    def wait_for_tcp(self, host: str, port: int, timeout: float = 60.0) -> bool:
        """True once HOST:PORT accepts connections (False: stop or a child died)."""
        if plumbing.poll(lambda: plumbing.tcp_open(port, host), timeout=timeout, interval=0.05,
                         give_up=self._give_up):
            return True
        if not self._give_up():
            _say(f"nothing listens on {host}:{port} after {timeout:.0f} s")
        return False

    def _dead_child(self) -> str | None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                return name
        return None

    def run(self) -> int:
        """Until a signal (exit 0 once both stopped) or a child's death (exit 1)."""
        dead = None
        while not self.stop_requested:
            dead = self._dead_child()
            if dead:
                break
            if self.reload_requested:
                self.reload()
            time.sleep(0.1)
        failed = dead is not None and not self.stop_requested
        if failed:
            code = self.children[dead].returncode
            _say(f"{dead} exited ({code}); stopping the rest")
        self.stop_all()
        return 1 if failed else 0

    def stop_all(self) -> None:
        """nginx first (graceful quit: the requests in flight finish), then gunicorn."""
        order = sorted(self.children, key=lambda name: name != "nginx")
        for name in order:
            proc = self.children[name]
            if proc.poll() is None:
                graceful = signal.SIGQUIT if name == "nginx" else signal.SIGTERM
                proc.send_signal(graceful)
            try:
                proc.wait(self.graceful_timeout + 5)
            except subprocess.TimeoutExpired:
                _say(f"{name} did not stop in time; killing it")
                proc.kill()
                proc.wait()
        self._stop_orphans()

    def _stop_orphans(self) -> None:
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            left = plumbing.children(os.getpid())
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while left and time.monotonic() < deadline:
                for pid in list(left):
                    try:
                        done, _ = os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        done = pid
                    if done:
                        left.remove(pid)
                time.sleep(0.05)
