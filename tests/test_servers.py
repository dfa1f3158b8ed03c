"""bin/serve's choice of WSGI server (issue 25): gunicorn by default and unchanged, Granian
pinned and built the same way (workers, socket, graceful timeout), its workers not root."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys

import pytest

from widgetsvc.ops import front, servers
from widgetsvc.ops.localdb import REPO_ROOT
from widgetsvc.ops.settings import ToolSettings
from widgetsvc.setting_errors import SettingError


def test_gunicorn_is_the_default_and_the_choice_is_checked():
    assert servers.chosen(ToolSettings.from_env({})) == "gunicorn"
    granian = ToolSettings.from_env({"WIDGETSVC_SERVER": "granian"})
    assert servers.chosen(granian) == "granian"
    assert servers.chosen(granian, "gunicorn") == "gunicorn"
    with pytest.raises(SettingError, match=r"^WIDGETSVC_SERVER=uwsgi: .*\(gunicorn or granian\)"):
        ToolSettings.from_env({"WIDGETSVC_SERVER": "uwsgi"})


def test_the_granian_pin_is_the_extras_pin():
    """setup.cfg's ``granian`` extra (and the test extra) and what bin/serve installs agree."""
    parsed = configparser.ConfigParser()
    parsed.read(REPO_ROOT / "setup.cfg")
    extras = parsed["options.extras_require"]
    assert extras["granian"].split() == [servers.GRANIAN_REQUIREMENT]
    assert servers.GRANIAN_REQUIREMENT in extras["test"].split("\n")
    assert servers.GRANIAN_REQUIREMENT.startswith("granian==")


def test_granian_gets_the_same_workers_socket_and_graceful_timeout():
    tools = ToolSettings.from_env({"WEB_CONCURRENCY": "3", "GUNICORN_GRACEFUL_TIMEOUT": "12",
                                   "LOG_LEVEL": "WARNING", "HOST": "h", "PORT": "1"})
    argv = servers.granian_argv("granian", tools, uds=REPO_ROOT / "x.sock")
    joined = " ".join(argv)
    assert "--interface wsgi" in joined and "--workers 3" in joined
    assert f"--uds {REPO_ROOT / 'x.sock'}" in joined and "--host" not in argv
    assert "--workers-kill-timeout 12" in joined and "--log-level warning" in joined
    assert argv[-1] == "widgetsvc.ops.granian_app:app"  # drops root before the app exists
    direct = servers.granian_argv(
        "granian", ToolSettings.from_env({"HOST": "[::1]", "PORT": "8001"}), uds=None)
    assert direct[direct.index("--host") + 1] == "::1" and "--uds" not in direct
    assert direct[direct.index("--workers") + 1] == str((os.cpu_count() or 1) + 1)


def test_an_operators_granian_settings_win_and_the_app_is_named():
    env = servers.granian_env({"GRANIAN_BLOCKING_THREADS": "2"}, "bench.hello:app")
    assert env["GRANIAN_BLOCKING_THREADS"] == "2"
    assert env["GRANIAN_BACKPRESSURE"] == servers.GRANIAN_DEFAULTS["GRANIAN_BACKPRESSURE"]
    assert env["WIDGETSVC_GRANIAN_APP"] == "bench.hello:app"
    assert servers.granian_env({})["WIDGETSVC_GRANIAN_APP"] == "widgetsvc.wsgi:app"


@pytest.mark.parametrize("target", ["", "widgetsvc.wsgi:app", "bench.hello:app"])
def test_good_app_names_pass(target):
    assert ToolSettings.from_env({"WIDGETSVC_GRANIAN_APP": target}).granian_app == target


@pytest.mark.parametrize("target", ["x", "a b:app", "os:system()", ":app", "m:"])
def test_bad_app_names_are_refused(target):
    with pytest.raises(SettingError, match="^WIDGETSVC_GRANIAN_APP="):
        ToolSettings.from_env({"WIDGETSVC_GRANIAN_APP": target})


def test_nginx_keeps_connections_to_granian_only():
    """gunicorn's front is rendered exactly as before (its sync workers close each connection);
    Granian's upstream keeps idle connections (the front already clears ``Connection``)."""
    def upstream(kind: str) -> str:
        text = front.render(["unix:/run/w.sock"], "127.0.0.1:80", "/run/w",
                            upstream_keepalive=servers.upstream_keepalive(kind))
        return text.split("upstream widgetsvc {", 1)[1].split("}", 1)[0]

    assert upstream("gunicorn").split() == ["server", "unix:/run/w.sock;"]
    assert upstream("granian").split() == ["server", "unix:/run/w.sock;", "keepalive",
                                           f"{servers.upstream_keepalive('granian')};"]
    assert front.render(["unix:/run/w.sock"], "127.0.0.1:80", "/run/w") == front.render(
        ["unix:/run/w.sock"], "127.0.0.1:80", "/run/w", upstream_keepalive=0)


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="only root has privileges to drop")
def test_a_granian_worker_as_root_gives_up_root_before_the_app_exists():
    """What each Granian worker does on loading its target: once it is loaded, the process
    (which then creates the app) is the app user, without root's groups."""
    code = ("import os, widgetsvc.ops.granian_app as g; "
            "print(g.app is os.getpid, os.getuid(), os.geteuid(), os.getgid(), os.getgroups())")
    env = {**os.environ, "WIDGETSVC_GRANIAN_APP": "os:getpid"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=REPO_ROOT).stdout
    user = servers.app_user()
    assert out.split(" ", 4)[:4] == ["True", str(user.pw_uid), str(user.pw_uid),
                                     str(user.pw_gid)]
    assert out.split(" ", 4)[4].strip() in ("[]", f"[{user.pw_gid}]")
