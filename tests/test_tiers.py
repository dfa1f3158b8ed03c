"""The tiers (tests/tiers.py): ``bin/test --fast`` boots no server and starts no program, and a
test that would is refused in every run unless it is marked e2e."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import LiveServer
from widgetsvc.ops.localdb import REPO_ROOT


def test_a_test_not_marked_e2e_may_start_no_process(process_guard):
    with process_guard.expecting():
        subprocess.run(["true"], check=False)
    with process_guard.expecting():
        os.system("true")  # noqa: S605, S607 (the refusal is the point)


def test_a_server_fixture_refuses_to_boot_outside_e2e(process_guard, tmp_path):
    """What ``live_server`` and the other server fixtures start: bin/serve, refused here."""
    server = LiveServer("postgresql:///nowhere", tmp_path / "serve.log")
    with process_guard.expecting():
        server.start(timeout=5)
    assert server.proc is None


def test_a_swallowed_refusal_still_fails_the_test(process_guard):
    """A test catching every exception around its subprocess is not let through: the guard
    remembers what was started, and the run fails the test after its call."""
    count = len(process_guard.started)
    try:
        subprocess.run(["true"], check=False)
    except Exception:  # noqa: BLE001, S110 (a careless test)
        pass
    assert len(process_guard.started) == count + 1
    del process_guard.started[count:]  # this test's own refusal, forgiven


@pytest.mark.e2e
def test_fast_collects_no_test_that_boots_a_server():
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "test"), "--fast", "--collect-only", "-q"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    assert len(ids) > 1000, result.stdout[-2000:]
    files = {i.split("::")[0] for i in ids}
    for booting in ("tests/test_e2e.py", "tests/test_front_door.py", "tests/test_cluster.py",
                    "tests/test_cli.py", "tests/test_browser.py", "tests/test_clients.py"):
        assert booting not in files
    # in a file of both kinds, only the in-process tests stay
    assert any(i.startswith("tests/test_hygiene.py::") for i in ids)
    assert not any(i.startswith("tests/test_hygiene.py::test_nginx_errors_are_json") for i in ids)
    summary = result.stdout.strip().splitlines()[-1]
    assert "deselected" in summary, summary


@pytest.mark.parametrize(("args", "parallel"), [
    ([], True),
    (["-k", "login", "-x"], True),
    (["tests/test_cli.py", "-q"], True),
    (["--serial"], False),
    (["-k", "login", "--serial", "-x"], False),
    (["--fast"], False),
    (["-n", "0"], False),
    (["-n3"], False),
    (["--numprocesses=4"], False),
    (["--collect-only", "-q"], False),
    (["--co"], False),
    (["--pdb"], False),
    (["-p", "no:xdist"], False),
    (["--", "--serial"], True),  # after "--": pytest's to read, not bin/test's
])
def test_the_full_tier_runs_on_workers_unless_told_otherwise(args, parallel):
    from widgetsvc.ops.testrun import with_workers

    result = with_workers(args)
    own = args[:args.index("--")] if "--" in args else args
    expected_rest = [a for a in args if a != "--serial"] if "--serial" in own else args
    assert result[len(result) - len(expected_rest):] == expected_rest
    assert (result != expected_rest) == parallel
    if parallel:
        assert result[0] == "-n" and int(result[1]) >= 2
        assert result[2:5] == ["--dist", "loadgroup", "--no-loadscope-reorder"]


@pytest.mark.e2e  # runs pytest on two xdist workers
def test_the_workers_group_the_shared_cluster_and_each_module(tmp_path):
    """What the workers collect carries the groups ``--dist loadgroup`` schedules by (xdist's
    ``@group`` suffix): every test of the shared cluster in one, every other module's in its
    own. A worker reads ``dist`` as "no": a check of that once left every test ungrouped, so
    the cluster's tests ran on both workers, each with a cluster of its own."""
    (tmp_path / "groups_probe.py").write_text(
        "import os, pytest\n"
        "@pytest.hookimpl(trylast=True)\n"
        "def pytest_collection_modifyitems(config, items):\n"
        f"    path = {str(tmp_path)!r} + '/' + os.environ['PYTEST_XDIST_WORKER']\n"
        "    with open(path, 'w') as out:\n"
        "        out.writelines(item.nodeid + '\\n' for item in items)\n"
        "    items.clear()  # collected and grouped: nothing to run\n")
    from widgetsvc.ops.testrun import with_workers

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "groups_probe", "-q", "-p", "no:cacheprovider",
         *with_workers([])], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 5, result.stdout[-2000:] + result.stderr[-2000:]  # no tests ran
    for worker in ("gw0", "gw1"):
        ids = (tmp_path / worker).read_text().splitlines()
        assert len(ids) > 2000
        groups = {i.rsplit("@", 1)[1] for i in ids if "@" in i}
        assert all("@" in i for i in ids), [i for i in ids if "@" not in i][:3]
        cluster = [i for i in ids if i.endswith("@shared-cluster")]
        assert any(i.startswith("tests/test_cluster.py::test_down_leaves") for i in cluster)
        assert any(i.startswith("tests/test_cluster_metrics.py::") for i in cluster)
        assert ids[:len(cluster)] == cluster  # first, the longest
        assert "tests/test_cli.py" in groups and "tests/test_widgets_api.py" in groups
        for i in ids:
            if not i.endswith("@shared-cluster"):
                assert i.rsplit("@", 1)[1] == i.split("::")[0], i
