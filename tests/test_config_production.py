"""Production refuses to start with a weak secret or cheap bcrypt (docs/API.md §6): the one set
of refusal tests, at both levels (the configuration, and the real ``bin/serve``)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers_sql import TESTING_QUERIES
from widgetsvc.config import Config, ConfigError
from widgetsvc.ops import plumbing
from widgetsvc.ops.localdb import REPO_ROOT

SECRET_32 = "s" * 32
DB = "postgresql://widgetsvc@127.0.0.1:1/nowhere"

# every way to say "production": unset, spelled out, any case, blank
PRODUCTION_ENVS = [{}, {"WIDGETSVC_ENV": "production"}, {"WIDGETSVC_ENV": " Production "},
                   {"WIDGETSVC_ENV": ""}]
PRODUCTION_IDS = ["unset", "production", "Production", "blank"]

NOT_SET = "SECRET_KEY=: not set (a random string, at least 32 bytes in production)"


def short(size: int) -> str:
    return f"SECRET_KEY=<{size} bytes, not shown>: too short for production (at least 32 bytes)"


def low_rounds(rounds: int) -> str:
    return (f"BCRYPT_ROUNDS={rounds}: too low for production (at least 12; 4 with "
            "WIDGETSVC_ENV=development or test)")


REFUSED = [
    ({}, NOT_SET),
    ({"SECRET_KEY": ""}, NOT_SET),
    ({"SECRET_KEY": "short"}, short(5)),
    ({"SECRET_KEY": "s" * 31}, short(31)),
    # 31 bytes however many characters: the rule counts bytes
    ({"SECRET_KEY": "é" * 15 + "s"}, short(31)),
    ({"SECRET_KEY": SECRET_32, "BCRYPT_ROUNDS": "11"},
     low_rounds(11)),
    ({"SECRET_KEY": SECRET_32, "BCRYPT_ROUNDS": "10"},
     low_rounds(10)),
    ({"SECRET_KEY": SECRET_32, "BCRYPT_ROUNDS": "4"},
     low_rounds(4)),
    # both weak: the secret is reported
    ({"SECRET_KEY": "too-short-secret", "BCRYPT_ROUNDS": "4"},
     short(16)),
]
REFUSED_IDS = ["no-secret", "empty-secret", "5-bytes", "31-bytes", "31-bytes-multibyte",
               "rounds-11", "rounds-10", "rounds-4", "short-secret-and-rounds-4"]


def env(production: dict[str, str], **values: str) -> dict[str, str]:
    return {"DATABASE_URL": DB, **production, **values}


@pytest.mark.parametrize("production", PRODUCTION_ENVS, ids=PRODUCTION_IDS)
@pytest.mark.parametrize(("values", "message"), REFUSED, ids=REFUSED_IDS)
def test_production_refuses_a_weak_configuration(production, values, message):
    with pytest.raises(ConfigError) as caught:
        Config.from_env(env(production, **values))
    assert str(caught.value) == message


@pytest.mark.parametrize("production", PRODUCTION_ENVS, ids=PRODUCTION_IDS)
@pytest.mark.parametrize("values", [
    {"SECRET_KEY": SECRET_32},                                   # rounds default to 12
    {"SECRET_KEY": SECRET_32, "BCRYPT_ROUNDS": "12"},
    {"SECRET_KEY": "é" * 16, "BCRYPT_ROUNDS": "13"},             # 16 characters, 32 bytes
    {"SECRET_KEY": "s" * 64, "BCRYPT_ROUNDS": "12"},
], ids=["32-bytes-default-rounds", "32-bytes-12-rounds", "32-bytes-multibyte", "64-bytes"])
def test_production_accepts_32_bytes_and_12_rounds(production, values):
    config = Config.from_env(env(production, **values))
    assert config.is_production
    assert config.bcrypt_rounds >= 12
    assert len(config.secret_key.encode()) >= 32


@pytest.mark.parametrize("environment", ["test", "development", "TEST"])
def test_other_environments_allow_a_short_secret_and_a_low_cost(environment):
    """The control: the same weak values outside production are allowed (tests use them), so
    the refusals above really come from the production rules."""
    config = Config.from_env(env({"WIDGETSVC_ENV": environment}, SECRET_KEY="x",
                                 BCRYPT_ROUNDS="4"))
    assert not config.is_production
    assert config.environment == environment.lower()
    assert (config.secret_key, config.bcrypt_rounds) == ("x", 4)


@pytest.mark.parametrize("environment", ["test", "development"])
def test_no_secret_is_refused_in_every_environment(environment):
    with pytest.raises(ConfigError, match=r"^SECRET_KEY=: not set \("):
        Config.from_env(env({"WIDGETSVC_ENV": environment}, SECRET_KEY=""))


def test_the_secret_is_never_in_the_repr():
    config = Config.from_env(env({}, SECRET_KEY="very-secret-value-" + "x" * 20))
    assert "very-secret-value" not in repr(config)


# -- the real bin/serve ------------------------------------------------------------------------

def table_exists(url: str, name: str) -> bool:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(TESTING_QUERIES["catalog_table_exists"],
                            {"name": name}).fetchone()["present"]


@pytest.fixture
def untouched_db(pg_cluster):
    """A fresh, unmigrated database: refusing to start must leave it as it is."""
    name = f"serve_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


def run_serve(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [str(REPO_ROOT / "bin" / "serve")], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"bin/serve did not refuse to start:\n{stderr[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.e2e
@pytest.mark.parametrize(("values", "message"), REFUSED, ids=REFUSED_IDS)
def test_serve_refuses_to_start_with_one_clear_line(untouched_db, values, message):
    """``bin/serve`` (production by default) exits 1 with the reason as its last line, before
    it migrates anything or starts gunicorn."""
    child_env = {k: v for k, v in os.environ.items()
                 if k not in ("SECRET_KEY", "BCRYPT_ROUNDS", "WIDGETSVC_ENV")}
    child_env.update({"DATABASE_URL": untouched_db, "HOST": "127.0.0.1",
                      "PORT": str(plumbing.free_port()), "WEB_CONCURRENCY": "1", **values})
    result = run_serve(child_env)

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.splitlines()[-1] == f"widgetsvc: {message}"
    assert "Booting worker" not in result.stderr  # gunicorn never started
    assert not table_exists(untouched_db, "schema_migrations")  # nothing was done first
    assert not table_exists(untouched_db, "users")
