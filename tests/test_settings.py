"""The tools' one settings layer (widgetsvc/ops/settings.py): parsed once, defaults in one
place, one line per refusal, the environment never written to."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from widgetsvc.ops import settings
from widgetsvc.ops.settings import FrontSettings, ToolSettings
from widgetsvc.setting_errors import SettingError


def test_an_empty_environment_gives_the_documented_defaults():
    tools = ToolSettings.from_env({})
    assert (tools.host, tools.port, tools.listen) == ("127.0.0.1", 8000, "127.0.0.1:8000")
    assert (tools.server, tools.granian_app, tools.direct) == ("gunicorn", "", False)
    assert tools.workers == (os.cpu_count() or 1) + 1
    assert (tools.graceful_timeout, tools.worker_class, tools.log_level) == (30, "sync", "info")
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
    """The tools read the environment through this layer. (backup.py is switching over with
    the cluster's modules; metrics_listener runs in gunicorn's master, next to
    gunicorn.conf.py, and reads prometheus_client's own variable.)"""
    ops = Path(settings.__file__).parent
    readers = []
    for path in sorted(ops.glob("*.py")):
        if path.name in ("settings.py", "backup.py", "metrics_listener.py"):
            continue
        text = path.read_text()
        for needle in ("os.environ.get(", "os.environ[", "os.getenv("):
            if needle in text:
                readers.append(f"{path.name}: {needle}")
    assert readers == []
