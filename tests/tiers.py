"""The suite's two tiers (a pytest plugin, loaded by tests/conftest.py).

- ``bin/test --fast``: unit and in-process API tests (WebTest over ``create_app``) against the
  one throwaway database of the run; no server boots, no bin/ command, no other program.
- ``bin/test``: everything.

A test leaves the fast tier by the ``e2e`` marker (boots a server or runs a program) or the
``slow`` marker. ``e2e`` is given by module (``pytestmark``), by hand, or automatically to every
test that uses a server-booting fixture (``SERVER_FIXTURES``). What keeps the markers honest:
in every run, a test without ``e2e`` that starts a process (``subprocess``, ``fork``, ``exec``,
``posix_spawn``, ``system``) gets :class:`ProcessStarted` from the call and fails, so a
``--fast`` run can never boot a server. Only the run's own database (``FIXTURES_ALLOWED``:
initdb, pg_ctl, createdb) may start processes then.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager

import pytest

# Fixtures that boot a server (bin/serve, nginx, gunicorn, Granian, a cluster) or need a
# program (Node, Chromium): every test using one, directly or through another fixture, is e2e.
SERVER_FIXTURES = frozenset({
    "live_server", "servers", "front_server", "server", "cluster_dir", "node_tools",
    "chromium", "live_document", "live_schema",
})
# The run's throwaway PostgreSQL cluster and its database: the processes every tier needs.
FIXTURES_ALLOWED = frozenset({"_app_user_reaches_the_checkout", "pg_cluster", "database_url"})
OUT_OF_FAST = ("e2e", "slow")
WATCHED = frozenset({"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.system",
                     "os.exec", "os.spawn", "pty.spawn"})


class ProcessStarted(RuntimeError):
    """A test outside the e2e tier tried to start a process."""


class ProcessGuard:
    """An audit hook (PEP 578) that refuses process starts while armed, and remembers them so
    that a test swallowing the exception still fails."""

    def __init__(self) -> None:
        self.armed = False
        self.started: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if not self.armed or event not in WATCHED:
            return
        what = " ".join(map(str, args[1] if event == "subprocess.Popen" and args[1] else args))
        self.started.append(f"{event}: {what[:300]}")
        raise ProcessStarted(
            f"{event} ({what[:200]}) in a test not marked e2e: mark it @pytest.mark.e2e (or use "
            "a fixture of tests/tiers.py SERVER_FIXTURES); bin/test --fast starts no process")

    @contextmanager
    def arming(self, armed: bool) -> Iterator[None]:
        before, self.armed = self.armed, armed
        try:
            yield
        finally:
            self.armed = before

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """For the guard's own tests: the block must be refused, and that refusal is forgiven."""
        count = len(self.started)
        with pytest.raises(ProcessStarted):
            yield
        assert len(self.started) == count + 1, self.started[count:]
        del self.started[count:]


GUARD = ProcessGuard()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true", default=False,
                     help="the fast tier: unit and in-process API tests only (no test marked "
                          "e2e or slow), no server boots (tests/tiers.py)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    if not config.getoption("fast"):
        return
    kept = [i for i in items if not any(i.get_closest_marker(m) for m in OUT_OF_FAST)]
    dropped = [i for i in items if i not in set(kept)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _guarded(item: pytest.Item) -> bool:
    return item.get_closest_marker("e2e") is None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with GUARD.arming(_guarded(item)):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    count = len(GUARD.started)
    with GUARD.arming(_guarded(item)):
        result = yield
    if len(GUARD.started) > count:
        pytest.fail("started a process though not marked e2e:\n" + "\n".join(
            GUARD.started[count:]), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    # The last teardown of the run stops the run's own cluster.
    with GUARD.arming(_guarded(item) and nextitem is not None):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    if fixturedef.argname in FIXTURES_ALLOWED:
        with GUARD.arming(False):
            return (yield)
    return (yield)


@pytest.fixture
def process_guard() -> ProcessGuard:
    """The guard, for tests of the tiers themselves."""
    return GUARD
