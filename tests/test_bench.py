"""bin/bench must keep working: a short run prints its table with every scenario and no errors.

Speed itself is not asserted here (a loaded CI machine says nothing about it): the full
benchmark and its numbers are in the README and docs/benchmarks.md.
"""

import re
import subprocess

import pytest

from widgetsvc.ops.localdb import REPO_ROOT

pytestmark = pytest.mark.e2e  # runs bin/bench (tests/tiers.py)

SCENARIOS = ("user", "widget", "list", "list-deep", "create", "update", "login", "mixed",
             "refresh", "cursor", "cursor-deep", "cursor-filtered")


@pytest.mark.slow
def test_short_bench_prints_every_scenario_without_errors(tmp_path):
    plot = tmp_path / "bench.png"
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "bench"), "--short", "--widgets", "300",
         "--bcrypt-rounds", "4", "--connections", "4", "--plot", str(plot)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert "hello" in rows
    for name in SCENARIOS:
        assert name in rows, result.stdout
        req_per_s, errors = float(rows[name][1]), int(rows[name][4])
        assert req_per_s > 0
        assert errors == 0
        assert rows[name][-1] in ("met", "MISSED"), rows[name]  # each target is judged
    assert re.search(r"widgets=300 .* through nginx", result.stdout)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # --plot drew the chart


@pytest.mark.slow
def test_a_large_collection_judges_list_against_its_small_rate_in_the_same_run():
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "bench"), "--short", "--widgets", "100000",
         "--bcrypt-rounds", "4", "--connections", "4", "--scenarios", "list,list-deep,cursor"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "of list@1k" in rows["list"] and rows["list"].split()[-1] in ("met", "MISSED")
    assert float(rows["list@1k"].split()[1]) > 0
    assert ">= 0.30 of floor" in rows["list-deep"]
    assert "seeding: 100,000/100,000 widgets" in result.stderr  # progress, not silence
    # every cursor page walked, every widget once, then the workers' memory judged
    walk = re.search(r"cursor walk: 100,000 widgets in 1,000 pages .*longest cursor (\d+) "
                     r"characters\); worker RSS MB after it: .* (met|MISSED)$",
                     result.stdout, re.MULTILINE)
    assert walk, result.stdout
    assert int(walk.group(1)) <= 200


@pytest.mark.slow
def test_bench_memory_reports_every_worker_under_the_limit():
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "bench-memory"), "--short"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert re.search(r"after 3,000 distinct tokens +worker RSS MB +\d+: [\d.]+", result.stdout)
    assert re.search(r"max worker RSS [\d.]+ MB, limit 80 MB: met", result.stdout)


@pytest.mark.slow
def test_bench_cpu_prints_every_read_scenario():
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "bench-cpu"), "--widgets", "50", "--requests", "20"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    for name in ("hello", "user", "widget", "list", "list-deep"):
        cpu_us, backend_us, wall_us = (float(v) for v in rows[name][1:4])
        assert cpu_us > 0 and wall_us >= cpu_us * 0.5, rows[name]
        assert backend_us >= 0, rows[name]
    assert float(rows["hello"][2]) == 0  # the floor never touches PostgreSQL
