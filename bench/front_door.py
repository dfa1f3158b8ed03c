"""``bin/bench --front-door``: the front door's figures (issue 10, docs/API.md §8.1), measured
and judged here rather than in the pass/fail suite.

Runs tests/test_front_door.py's timing scenarios through ``bin/test`` with
``--front-door-figures`` (30 s holds, after waiting for a quiet machine, p99 within 100 ms:
200 idle + 20 slowloris connections beside a health probe; a 32-client login flood beside a
reader, with the default rate limit and with none), then prints each figure from
test-output/front-door.json with its verdict. ``bin/test`` runs the same scenarios shorter,
bounded at 10 times the limit.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "test-output" / "front-door.json"
SCENARIOS = "idle_and_slowloris or login_flood"


def rows(figures: dict) -> list[str]:
    """One line per scenario: its p50, p99, the limit and the verdict."""
    lines = [f"{'scenario':<42} {'p50 ms':>8} {'p99 ms':>8} {'limit':>7}  verdict"]
    for name in ("idle_and_slowloris", "login_flood_default",
                 "login_flood_no_rate_limit_distinct_emails"):
        found = figures.get(name)
        if found is None:
            lines.append(f"{name:<42} {'-':>8} {'-':>8} {'-':>7}  not run")
            continue
        latency = found.get("reader", found)
        p99, limit = latency.get("p99_ms"), found.get("p99_limit_ms")
        met = p99 is not None and limit is not None and p99 <= limit
        lines.append(f"{name:<42} {latency.get('p50_ms')!s:>8} {p99!s:>8} {limit!s:>7}  "
                     f"{'met' if met else 'MISSED'}")
    return lines


def main(pytest_args: list[str] | None = None) -> int:
    OUTPUT.unlink(missing_ok=True)
    argv = [str(REPO / "bin" / "test"), "tests/test_front_door.py", "--front-door-figures",
            "-k", SCENARIOS, "-p", "no:randomly", "-q", "-s", *(pytest_args or [])]
    code = subprocess.run(argv, cwd=REPO, stdin=subprocess.DEVNULL, check=False).returncode
    try:
        figures = json.loads(OUTPUT.read_text())
    except (OSError, ValueError):
        figures = {}
    print("\n".join(rows(figures)))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
