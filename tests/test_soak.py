"""The short soak (``bin/soak --duration 10``): a mixed workload from 32 clients against the
real bin/serve, nothing lost, no 5xx, no connection error (issue 5). ``bin/soak`` alone runs
the full 60 s."""

from __future__ import annotations

import re
import subprocess

import pytest

from widgetsvc.ops.localdb import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def figure(output: str, label: str) -> int:
    match = re.search(rf"^{label}: (\d+)", output, re.MULTILINE)
    assert match, f"no '{label}:' line in:\n{output}"
    return int(match.group(1))


def test_short_soak_loses_nothing():
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "soak"), "--duration", "10"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert figure(output, "requests served") > 0, output
    assert figure(output, "lost writes") == 0, output
    assert figure(output, "5xx responses") == 0, output
    assert figure(output, "connection errors") == 0, output
    assert "result: PASS" in output
