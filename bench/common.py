"""What the bench scripts share: the bench account and waiting for a server to answer."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

from widgetsvc.ops import plumbing

EMAIL = "bench-user@example.com"
PASSWORD = "Bench-pass-1"  # noqa: S105 (a throwaway bench account)


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until ``path`` answers 200 through whatever serves ``port`` (nginx answers 502 while
    gunicorn is still starting)."""
    def answers() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:  # noqa: S310
            return resp.status == 200

    if plumbing.poll(answers, timeout=timeout, give_up=lambda: proc.poll() is not None):
        return
    if proc.poll() is not None:
        sys.exit(f"bench: server on port {port} exited with {proc.returncode}")
    sys.exit(f"bench: nothing answers on port {port}")
