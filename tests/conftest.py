"""Shared fixtures: a throwaway PostgreSQL cluster for the run, the app, users and tokens.
(Plain helpers and the contract's constants are in tests/helpers.py.)

The cluster lives in var/test-<pid>/ (never the development one), its database is migrated
with the real ``bin/migrate`` code, and every test starts from empty tables.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import webtest
from hypothesis import settings as hypothesis_settings

from tests.helpers import PASSWORD, SECRET, LiveServer, forged_sid, login
from tests.helpers_cluster import CLUSTER, run
from tests.helpers_sql import run_sql
from widgetsvc import timefmt
from widgetsvc.app import create_app
from widgetsvc.auth.accounts import Accounts, NewUser
from widgetsvc.config import Config
from widgetsvc.db import SQL_DIR, Database, load_queries
from widgetsvc.ops import localdb
from widgetsvc.ops.cluster.packages import missing_packages
from widgetsvc.ops.localdb import VAR_DIR, PrivatePostgres, reachable_dir
from widgetsvc.ops.migrate import migrate

# The tiers (bin/test --fast), the e2e marker given by fixture, the guard against processes.
pytest_plugins = ["tests.tiers"]

# Many test servers start at once (and other clones' tests on this machine): none listens on the
# default METRICS_PORT unless its test asks for a port (tests/test_metrics.py).
os.environ.setdefault("METRICS_PORT", "0")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--front-door-figures", action="store_true", default=False,
                     help="tests/test_front_door.py with the figures' own settings (30 s holds, "
                          "p99 within 100 ms): what bin/bench --front-door runs")


# In CI the property-based tests (hypothesis, schemathesis) run a fixed, derandomized set of
# examples: a submission is judged on the same inputs that passed here. Locally each run
# explores new ones (and anything found becomes a pinned regression test).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


class SessionedUsers(Accounts):
    """``Accounts`` whose ``create`` also gives the new user the live session ``forged_sid``
    names, so that tokens forged for the user (tests/helpers.py) can be valid."""

    def create(self, email: str, password: str, *, admin: bool) -> NewUser | None:
        user = super().create(email, password, admin=admin)
        if user is not None:
            run_sql(self.db, "sessions_insert_for_user", public_id=user.public_id,
                    session_id=forged_sid(user.public_id))
        return user


@pytest.fixture(scope="session", autouse=True)
def _app_user_reaches_the_checkout():
    """As root, bin/serve runs the application as an unprivileged user, and refuses when that
    user cannot read the code (servers.app_user). CI clones into a directory only root may enter
    (``mktemp -d``): let the test servers' app user traverse the directories above the clone
    (search permission for others, never read), so the suite runs the service as it is
    deployed rather than as root. Says what it changed."""
    if os.geteuid() != 0 or os.environ.get("WIDGETSVC_APP_USER"):
        return
    localdb.ensure_bindir()  # the postgres user comes with Debian's postgresql
    user = localdb.cluster_owner()
    for code in (Path(localdb.REPO_ROOT), Path(sys.prefix).resolve()):
        for directory in reversed([code, *code.parents]):
            if not localdb.searchable(directory, user):
                directory.chmod(directory.stat().st_mode | 0o001)
                print(f"\nwidgetsvc tests: {directory} made searchable (o+x) for "
                      f"{user.pw_name}, who runs the test servers' application", file=sys.stderr)


@pytest.fixture(scope="session")
def pg_cluster():
    os.environ.setdefault("WIDGETSVC_PG_FSYNC", "off")
    cluster = PrivatePostgres(VAR_DIR / f"test-{os.getpid()}").start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def database_url(pg_cluster) -> str:
    url = pg_cluster.create_database("widgetsvc_test")
    migrate(url, log=lambda _msg: None)
    return url


@pytest.fixture(scope="session")
def config(database_url) -> Config:
    return Config.from_env({
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "WIDGETSVC_ENV": "test",
        "BCRYPT_ROUNDS": "4",
        "AUTH_RATE_LIMIT": "0",  # tests register many users from one address
    })


@pytest.fixture(scope="session")
def db(config):
    database = Database(config.database_url, min_size=1, max_size=4)
    database.pool.open(wait=True, timeout=10)
    yield database
    database.close()


RESET = load_queries(SQL_DIR / "testing")["reset_all"]


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Every test that touches the database starts from empty tables."""
    if "db" in request.fixturenames or "app" in request.fixturenames:
        database = request.getfixturevalue("db")
        with database.pool.connection() as conn:
            conn.execute(RESET)
    yield


@pytest.fixture(scope="session")
def clock() -> timefmt.Clock:
    """The real clock (stateless); tests of time build their own ``FixedClock`` app."""
    return timefmt.Clock()


@pytest.fixture(scope="session")
def _wsgi_app(config, db, clock):
    """One app for the whole run: building it (OpenAPI document, validators, routes) costs
    more than most tests, and it keeps no state of its own between requests (the database
    does, and every test starts from empty tables)."""
    return create_app(config, db=db, clock=clock)


@pytest.fixture
def app(_wsgi_app):
    """A WebTest client of the run's app (its own cookie jar per test)."""
    return webtest.TestApp(_wsgi_app)


@pytest.fixture
def users(db, config) -> Accounts:
    return SessionedUsers(db, config.bcrypt_rounds)


@pytest.fixture
def user_token(app, users) -> str:
    users.create("user@example.com", PASSWORD, admin=False)
    return login(app, "user@example.com")


@pytest.fixture
def admin_token(app, users) -> str:
    users.create("admin@example.com", PASSWORD, admin=True)
    return login(app, "admin@example.com")


# Issue 25: in the HTTP-level end-to-end files, every test that starts a real bin/serve runs
# under both servers (WIDGETSVC_SERVER, which LiveServer passes on); the rest of the suite, and
# the timing tests marked gunicorn_only, under gunicorn alone (suite time).
BOTH_SERVERS = frozenset({"test_e2e", "test_hygiene", "test_front_door", "test_graceful_stop",
                          "test_serve_supervisor"})
BOTH_SERVER_FIXTURES = frozenset({"live_server", "servers", "front_server", "server"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    definition = metafunc.definition
    if module in BOTH_SERVERS and definition.get_closest_marker("gunicorn_only") is None and (
            BOTH_SERVER_FIXTURES & set(metafunc.fixturenames)
            or definition.get_closest_marker("both_servers") is not None):
        metafunc.parametrize("wsgi_server", ["gunicorn", "granian"], indirect=True,
                             scope="module")


@pytest.fixture(scope="module", autouse=True)
def wsgi_server(request: pytest.FixtureRequest):
    """The server bin/serve runs (parametrized above); "gunicorn" where not parametrized."""
    kind = getattr(request, "param", "gunicorn")
    with pytest.MonkeyPatch.context() as patch:
        if kind != "gunicorn":
            patch.setenv("WIDGETSVC_SERVER", kind)
        yield kind


@pytest.fixture(scope="module")
def live_server(database_url, db, tmp_path_factory, wsgi_server):
    """The real bin/serve, booted once per module (and server kind): its tests share it, as
    they share the database (emptied before each test; a server keeps no state of its own)."""
    server = LiveServer(database_url, tmp_path_factory.mktemp("serve") / "serve.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_dir():
    """One ``bin/cluster up`` (2 instances, with its monitoring) for every test of it in the run
    (tests/test_cluster*.py): brought up by the first, purged by the last (the ``stops_cluster``
    test, which pytest_collection_modifyitems below runs after every other user)."""
    if os.geteuid() != 0 and missing_packages():
        pytest.skip(f"not root, and {', '.join(missing_packages())} not installed")
    directory = reachable_dir(VAR_DIR / f"cluster-test-{os.getpid()}")
    try:
        run(CLUSTER, "--dir", str(directory), "up", "--instances", "2", timeout=600)
        yield directory
    finally:
        run(CLUSTER, "--dir", str(directory), "down", "--purge", check=False, timeout=300)


SHARED_CLUSTER_GROUP = "shared-cluster"
# In a parallel run the longest modules start first, so that none of them begins near the end
# while the other worker idles (seconds each, one process: bin/test -n 0 --durations=0).
LONGEST_FIRST = ("test_schemathesis", "test_front_door", "test_backup", "test_bench",
                 "test_list_indexes", "test_hygiene", "test_cli", "test_input_cost", "test_fuzz",
                 "test_clients", "test_outage", "test_migrations", "test_soak")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests of the shared cluster run first and together, those that stop it last: the
    cluster is up for no other test, and down for none of its own. A test that boots a
    cluster of its own (``own_cluster``) runs right after them, never beside them: two
    clusters at once would draw their loopback ports from the same pool while either can be
    restarting. In a parallel run (bin/test: ``--dist loadgroup``) they are one group, on one
    worker, and every other module is a group of its own: its tests share the module's server
    (``live_server``) and its order. The longest groups start first (the clusters, minutes,
    then ``LONGEST_FIRST``)."""
    users = [i for i in items if "cluster_dir" in getattr(i, "fixturenames", ())]
    own = [i for i in items if i.get_closest_marker("own_cluster") and i not in set(users)]
    cluster = set(users) | set(own)
    if cluster:
        ordered = sorted(users, key=lambda i: i.get_closest_marker("stops_cluster") is not None)
        items[:] = ordered + own + [i for i in items if i not in cluster]
    # On xdist's workers (where items are collected, and so grouped) "dist" reads "no": theirs
    # is not to distribute. "loadgroup" says what the run is.
    if not getattr(config.option, "loadgroup", False):
        return

    def rank(item: pytest.Item) -> int:
        if item in cluster:
            return -1
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module's own order is kept
    for item in items:
        group = SHARED_CLUSTER_GROUP if item in cluster else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
