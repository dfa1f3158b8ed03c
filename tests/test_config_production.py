"""Production refuses to start with a weak secret or cheap bcrypt (docs/API.md §6)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from widgetsvc.config import Config, ConfigError
from widgetsvc.localdb import REPO_ROOT

SECRET_32 = "s" * 32
DB = "postgresql://widgetsvc@127.0.0.1:1/nowhere"

# every way to say "production": unset, spelled out, any case, blank
PRODUCTION_ENVS = [{}, {"WIDGETSVC_ENV": "production"}, {"WIDGETSVC_ENV": " Production "},
                   {"WIDGETSVC_ENV": ""}]
PRODUCTION_IDS = ["unset", "production", "Production", "blank"]

REFUSED = [
    ({}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": "s" * 31}, "SECRET_KEY must be at least 32 bytes in production"),
    # 31 bytes however many characters: the rule counts bytes
    ({"SECRET_KEY": "é" * 15 + "s"}, "SECRET_KEY must be at least 32 bytes in production"),
    ({"SECRET_KEY": SECRET_32, "BCRYPT_ROUNDS": "11"},
     "BCRYPT_ROUNDS must be at least 12 in production"),
    ({"SECRET_KEY": SECRET_32, "BCRYPT_ROUNDS": "4"},
     "BCRYPT_ROUNDS must be at least 12 in production"),
]
REFUSED_IDS = ["no-secret", "empty-secret", "31-bytes", "31-bytes-multibyte", "rounds-11",
               "rounds-4"]


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


def test_the_test_environment_may_use_a_short_secret_and_cheap_bcrypt():
    """The control: the same weak values outside production are allowed (tests use them), so
    the refusals above really come from the production rules."""
    config = Config.from_env(env({"WIDGETSVC_ENV": "test"}, SECRET_KEY="short",
                                 BCRYPT_ROUNDS="4"))
    assert not config.is_production and config.bcrypt_rounds == 4


def test_the_secret_is_never_in_the_repr():
    config = Config.from_env(env({}, SECRET_KEY="very-secret-value-" + "x" * 20))
    assert "very-secret-value" not in repr(config)


@pytest.mark.parametrize(("values", "message"), [
    ({}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": "s" * 31}, "SECRET_KEY must be at least 32 bytes in production"),
    ({"SECRET_KEY": SECRET_32, "BCRYPT_ROUNDS": "11"},
     "BCRYPT_ROUNDS must be at least 12 in production"),
], ids=["no-secret", "31-bytes", "rounds-11"])
def test_serve_refuses_to_start_with_one_clear_line(tmp_path, values, message):
    """``bin/serve``'s entry point exits 1 with the reason before it touches anything."""
    child_env = {k: v for k, v in os.environ.items()
                 if k not in ("SECRET_KEY", "BCRYPT_ROUNDS", "WIDGETSVC_ENV")}
    child_env.update({"DATABASE_URL": DB, "HOST": "127.0.0.1", "PORT": "1", **values})
    done = subprocess.run(
        [sys.executable, "-m", "widgetsvc.cli", "serve", "--no-migrate"], env=child_env,
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.strip() == f"widgetsvc: {message}"
