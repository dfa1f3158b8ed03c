"""The tools' one settings layer (widgetsvc/ops/settings.py): parsed once, defaults in one
place, one line per refusal, the environment never written to."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from bench import floor
from widgetsvc import config
from widgetsvc.config import Config
from widgetsvc.ops import front, settings
from widgetsvc.ops.cluster import instance
from widgetsvc.ops.localdb import REPO_ROOT
from widgetsvc.ops.settings import FrontSettings, ToolSettings
from widgetsvc.setting_errors import SettingError


def test_an_empty_environment_gives_the_documented_defaults():
    tools = ToolSettings.from_env({})
    assert (tools.host, tools.port, tools.listen) == ("127.0.0.1", 8000, "127.0.0.1:8000")
    assert (tools.server, tools.granian_app, tools.direct) == ("gunicorn", "", False)
    assert tools.workers == (os.cpu_count() or 1) + 1
    assert (tools.graceful_timeout, tools.worker_class, tools.log_level) == (30, "sync", "info")
    assert (tools.threads, tools.timeout, tools.keepalive, tools.gunicorn_socket) == (1, 30, 5,
                                                                                      None)
    assert (tools.migrate_lock_timeout, tools.migrate_retries) == ("2s", 5)
    assert (tools.backup_repo, tools.backup_retention) == (None, 2)
    assert (tools.cluster_dir, tools.pgbouncer_pool_size) == (None, 20)
    assert tools.pg_fsync and tools.state_home is None and tools.database_url == ""
    assert tools.front == FrontSettings(auth_rate_limit=30, trusted_proxies=(),
                                        auth_conn_limit=0, auth_in_flight=None)
    assert tools == ToolSettings()  # the dataclass's defaults are the parser's


def test_values_are_parsed_once_into_types(tmp_path):
    tools = ToolSettings.from_env({
        "HOST": "::1", "PORT": "8080", "WIDGETSVC_DIRECT": "yes", "WIDGETSVC_SERVER": "granian",
        "WEB_CONCURRENCY": "3", "GUNICORN_GRACEFUL_TIMEOUT": "7", "LOG_LEVEL": "DEBUG",
        "WIDGETSVC_PG_FSYNC": "off", "XDG_STATE_HOME": str(tmp_path),
        "MIGRATE_LOCK_TIMEOUT": "500ms", "MIGRATE_RETRIES": "0", "BACKUP_RETENTION": "4",
        "PGBOUNCER_POOL_SIZE": "7", "WIDGETSVC_CLUSTER_DIR": str(tmp_path / "c"),
        "TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16", "AUTH_IN_FLIGHT": "0",
        "WIDGETSVC_NGINX_USER": "nobody",
    })
    assert tools.listen == "[::1]:8080" and tools.direct and tools.server == "granian"
    assert (tools.workers, tools.graceful_timeout, tools.log_level) == (3, 7, "debug")
    assert not tools.pg_fsync and tools.state_home == tmp_path
    assert (tools.migrate_lock_timeout, tools.migrate_retries) == ("500ms", 0)
    assert (tools.backup_retention, tools.pgbouncer_pool_size) == (4, 7)
    assert tools.cluster_dir == tmp_path / "c" and tools.nginx_user == "nobody"
    assert tools.front.trusted_proxies == ("10.0.0.1/32", "192.168.0.0/16")
    assert tools.front.limits(3)["auth_in_flight"] == 0
    assert FrontSettings.from_env({}).limits(3)["auth_in_flight"] == 3


@pytest.mark.parametrize(("name", "value"), [
    ("HOST", "a;b"), ("PORT", "0"), ("WIDGETSVC_DIRECT", "maybe"),
    ("WIDGETSVC_SERVER", "tomcat"), ("WIDGETSVC_GRANIAN_APP", "no app"),
    ("WEB_CONCURRENCY", "0"), ("GUNICORN_GRACEFUL_TIMEOUT", "-1"),
    ("GUNICORN_WORKER_CLASS", "gevent"), ("GUNICORN_THREADS", "0"), ("GUNICORN_TIMEOUT", "x"),
    ("GUNICORN_KEEPALIVE", "-1"), ("WIDGETSVC_GUNICORN_SOCKET", "relative.sock"),
    ("WIDGETSVC_PG_OS_USER", "no-such-user-x"), ("WIDGETSVC_NGINX_USER", "root"),
    ("WIDGETSVC_APP_USER", "no-such-user-x"), ("WIDGETSVC_PG_FSYNC", "sometimes"),
    ("XDG_STATE_HOME", "relative"), ("AUTH_RATE_LIMIT", "x"), ("AUTH_CONN_LIMIT", "-2"),
    ("AUTH_IN_FLIGHT", "lots"), ("TRUSTED_PROXIES", "evil"),
    ("MIGRATE_LOCK_TIMEOUT", "soon"), ("MIGRATE_RETRIES", "101"),
    ("BACKUP_REPO", "relative"), ("BACKUP_RETENTION", "0"), ("PGBOUNCER_POOL_SIZE", "0"),
])
def test_each_bad_value_is_refused_naming_its_variable(name, value):
    with pytest.raises(SettingError) as refused:
        ToolSettings.from_env({name: value})
    assert refused.value.name == name
    assert str(refused.value).startswith(f"{name}={value}: ")


def test_paths_that_exist_as_files_are_refused_for_directories(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("")
    for name in ("BACKUP_REPO", "WIDGETSVC_CLUSTER_DIR"):
        with pytest.raises(SettingError, match=f"^{name}=.*: exists and is not a directory"):
            ToolSettings.from_env({name: str(a_file)})


def test_the_settings_are_frozen_and_never_write_the_environment():
    before = dict(os.environ)
    tools = ToolSettings.from_env()
    assert dict(os.environ) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        tools.port = 1  # type: ignore[misc]
    assert "secret" not in repr(ToolSettings(secret_key="secret"))



def test_no_tool_reads_the_environment_by_itself():
    """The tools read the environment through this layer. (metrics_listener runs in gunicorn's
    master, next to gunicorn.conf.py, and reads prometheus_client's own variable.)"""
    ops = Path(settings.__file__).parent
    readers = []
    for path in sorted([*ops.glob("*.py"), *(ops / "cluster").glob("*.py")]):
        if path.name in ("settings.py", "metrics_listener.py"):
            continue
        text = path.read_text()
        for needle in ("os.environ.get(", "os.environ[", "os.getenv("):
            if needle in text:
                readers.append(f"{path.name}: {needle}")
    assert readers == []


class _Recording(dict):
    """An environment that notes every name read from it."""

    def __init__(self, values: Mapping[str, str]):
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name, default=None):
        self.read.add(name)
        return super().get(name, default)

    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)


def test_env_names_are_exactly_what_config_reads():
    """config.ENV_NAMES (the cluster's restart list is built from it) is what from_env reads:
    a new setting that is not listed would not restart the instances when changed."""
    env = _Recording({"DATABASE_URL": "postgresql:///x", "SECRET_KEY": "k" * 48})
    Config.from_env(env)
    assert env.read == set(config.ENV_NAMES)
    assert len(set(config.ENV_NAMES)) == len(config.ENV_NAMES)


def test_a_change_to_any_service_setting_restarts_a_cluster_instance():
    """All but the metrics port, which the cluster assigns each instance (a killed instance
    may come back on another one without restarting the others)."""
    assert set(config.ENV_NAMES) - set(instance.SETTINGS) == {"METRICS_PORT"}
    assert {"AUTH_RATE_LIMIT", "TOKEN_ALGORITHM", "SIGNING_KEY_FILE", "PREVIOUS_SECRET_KEYS",
            "DB_POOL_TIMEOUT_MS", "DB_STATEMENT_TIMEOUT_MS"} <= set(instance.SETTINGS)
    assert set(settings.GUNICORN_ENV_NAMES) <= set(instance.SETTINGS)


def test_the_worker_default_is_one_function_everywhere(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert config.default_workers() == 6
    assert ToolSettings.from_env({}).workers == ToolSettings().workers == 6
    assert config.web_concurrency({}) == 6
    assert floor.concurrency({}) == 6 * Config.pool_max_size
    assert floor.concurrency({"WEB_CONCURRENCY": "2", "DB_POOL_MAX": "3"}) == 6


def test_both_sides_accept_the_same_yes_no_words():
    for word, meaning in config.BOOLEANS.items():
        assert ToolSettings.from_env({"WIDGETSVC_DIRECT": word.upper()}).direct is meaning
        service = Config.from_env({"DATABASE_URL": "postgresql:///x", "SECRET_KEY": "k" * 48,
                                   "DB_PGBOUNCER": word})
        assert service.pgbouncer is meaning
    assert not hasattr(settings, "_BOOLEANS")


def test_the_service_parses_its_metrics_port_once():
    base = {"DATABASE_URL": "postgresql:///x", "SECRET_KEY": "k" * 48}
    assert Config.from_env(base).metrics_port == config.METRICS_DEFAULT_PORT
    assert Config.from_env({**base, "METRICS_PORT": "0"}).metrics_port == 0
    with pytest.raises(config.ConfigError, match=r"^METRICS_PORT=70000: not a port \("):
        Config.from_env({**base, "METRICS_PORT": "70000"})


def test_render_takes_its_limits_from_front_settings_alone(tmp_path):
    """No numbers of render's own: unconfigured, nginx's ceiling is FrontSettings' default
    (twice the application's quota, a burst of the whole quota)."""
    quota = FrontSettings().auth_rate_limit
    text = front.render(["unix:/run/a.sock"], "127.0.0.1:80", tmp_path)
    assert f"rate={2 * quota}r/m;" in text and f"burst={quota} nodelay;" in text
    assert f"q={quota};w=60" in text
    assert text == front.render(["unix:/run/a.sock"], "127.0.0.1:80", tmp_path,
                                limits=FrontSettings.from_env({}), hash_slots=0)


_SHOW_GUNICORN = """
import json, runpy
conf = runpy.run_path("gunicorn.conf.py")
print(json.dumps({k: conf[k] for k in ("bind", "workers", "worker_class", "threads", "timeout",
                                       "graceful_timeout", "keepalive", "loglevel",
                                       "forwarded_allow_ips")}))
"""


def _gunicorn_conf(**env: str) -> subprocess.CompletedProcess[str]:
    """gunicorn.conf.py as plain ``gunicorn -c`` loads it (no bin/serve), in a process of its
    own (it forgets the widgetsvc modules it finds imported)."""
    keep = {k: v for k, v in os.environ.items() if not re.match(r"(GUNICORN_|WIDGETSVC_)", k)}
    return subprocess.run([sys.executable, "-c", _SHOW_GUNICORN], cwd=REPO_ROOT,
                          env={**keep, "METRICS_PORT": "0", **env}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.e2e
def test_gunicorn_conf_takes_its_values_from_the_settings_layers():
    shown = _gunicorn_conf()
    assert shown.returncode == 0, shown.stderr
    tools = ToolSettings.from_env({})
    assert json.loads(shown.stdout) == {
        "bind": tools.listen, "workers": tools.workers, "worker_class": tools.worker_class,
        "threads": tools.threads, "timeout": tools.timeout,
        "graceful_timeout": tools.graceful_timeout, "keepalive": tools.keepalive,
        "loglevel": tools.log_level, "forwarded_allow_ips": ""}
    shown = _gunicorn_conf(WIDGETSVC_GUNICORN_SOCKET="/run/w/g.sock", GUNICORN_THREADS="3",
                           GUNICORN_WORKER_CLASS="gthread", GUNICORN_TIMEOUT="9",
                           GUNICORN_KEEPALIVE="2", WEB_CONCURRENCY="4", LOG_LEVEL="warning",
                           FORWARDED_ALLOW_IPS="10.0.0.1, 10.0.0.2")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "bind": "unix:/run/w/g.sock", "workers": 4, "worker_class": "gthread", "threads": 3,
        "timeout": 9, "graceful_timeout": tools.graceful_timeout, "keepalive": 2,
        "loglevel": "warning", "forwarded_allow_ips": "10.0.0.1,10.0.0.2"}
    refused = _gunicorn_conf(GUNICORN_KEEPALIVE="soon")
    assert refused.returncode == 1 and refused.stderr == (
        "widgetsvc: GUNICORN_KEEPALIVE=soon: not a whole number (seconds, 0 or more)\n")


def test_nothing_but_the_two_layers_reads_their_variables():
    """A variable config.py or ops/settings.py owns is read there alone: no other module of the
    service or its tools (nor gunicorn.conf.py) reads it from the environment again."""
    layers = [Path(config.__file__), Path(settings.__file__)]
    owned = set()
    for path in layers:
        owned |= set(re.findall(r"""(?:env\.get\(|\w+\(env, )["']([A-Z][A-Z0-9_]+)["']""",
                                path.read_text()))
    assert {"BACKUP_REPO", "BACKUP_RETENTION", "METRICS_PORT", "LOG_LEVEL", "HOST"} <= owned
    readers = []
    for path in [REPO_ROOT / "gunicorn.conf.py", *(REPO_ROOT / "widgetsvc").rglob("*.py")]:
        if path in layers:
            continue
        for name in re.findall(r"""(?:environ\.get\(|environ\[|getenv\(|env\.get\()"""
                               r"""\s*["']([A-Z][A-Z0-9_]+)["']""", path.read_text()):
            if name in owned:
                readers.append(f"{path.relative_to(REPO_ROOT)}: {name}")
    assert readers == []
