"""The cluster's configuration, without running it: the ``deploy/`` templates render completely
and say what the README promises, the front retries only reads, and ``DB_PGBOUNCER=1`` makes
the pool PgBouncer-safe. (``tests/test_cluster.py`` runs the real thing.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from widgetsvc.config import Config
from widgetsvc.db import Database
from widgetsvc.ops.cluster.hacluster import HACluster
from widgetsvc.ops.cluster.part import Part
from widgetsvc.ops.cluster.render import render

VALUES = {
    "name": "n1", "data_dir": "/d", "host": "127.0.0.1", "client_port": 1, "peer_port": 2,
    "token": "t", "scope": "s", "rest_port": 3, "etcd_hosts": "127.0.0.1:1", "pg_port": 4,
    "bin_dir": "/b", "pgpass": "/p", "superuser_password": "x", "replication_password": "y",
    "socket_dir": "/s", "hba_network": "127.0.0.1/32", "max_connections": 200, "port": 5,
    "servers": "    server pg1 127.0.0.1:4 check port 3", "stats_socket": "/h.sock",
    "dbname": "widgetsvc", "upstream_host": "127.0.0.1", "upstream_port": 5,
    "auth_file": "/u", "log_file": "/l", "pid_file": "/pid", "pool_size": 20,
    "max_db_connections": 24, "rest_username": "patroni", "rest_password": "r",
    "etcd_username": "patroni", "etcd_password": "e", "rest_basic": "cGF0cm9uaTpy",
    "archive_command": '"pgbackrest --config=/c --stanza=cluster --pg1-path=/d archive-push %p"',
}
TEMPLATES = ["etcd/etcd.yml.template", "patroni/patroni.yml.template",
             "haproxy/haproxy.cfg.template", "pgbouncer/pgbouncer.ini.template"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders_with_no_placeholder_left(template):
    text = render(template, **VALUES)
    assert "${" not in text.replace("${...}", "")


def test_a_missing_value_is_an_error_not_a_blank():
    with pytest.raises(KeyError):
        render("haproxy/haproxy.cfg.template", host="127.0.0.1")


def test_patroni_settings_are_the_documented_ones():
    config = yaml.safe_load(render("patroni/patroni.yml.template", **VALUES))
    dcs = config["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is False
    assert dcs["primary_start_timeout"] == 0
    # Patroni's rule for these three (Patroni docs, dynamic configuration).
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert config["postgresql"]["listen"].startswith("127.0.0.1:")
    assert all("127.0.0.1/32" in line or line.startswith("local")
               for line in config["postgresql"]["pg_hba"])


def test_every_node_archives_its_wal_with_pgbackrest():
    """Both nodes carry archive_mode and the command (issue 19): whichever leads archives."""
    parameters = yaml.safe_load(render("patroni/patroni.yml.template",
                                       **VALUES))["postgresql"]["parameters"]
    assert parameters["archive_mode"] == "on"
    assert parameters["archive_command"].endswith("archive-push %p")


def test_haproxy_routes_by_patronis_primary_check_and_cuts_old_sessions():
    text = render("haproxy/haproxy.cfg.template", **VALUES)
    assert "option httpchk GET /primary" in text
    assert "on-marked-down shutdown-sessions" in text


def test_pgbouncer_pools_transactions_and_retries_logins_every_second():
    text = render("pgbouncer/pgbouncer.ini.template", **VALUES)
    settings = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line
                    and not line.startswith(";"))
    assert settings["pool_mode"] == "transaction"
    assert settings["server_login_retry"] == "1"


def fake_cluster(tmp_path: Path, instances: int = 2) -> HACluster:
    cluster = HACluster(tmp_path / "c")
    cluster.state = {"instances": instances, "pgbouncer": True,
                     "ports": {"front": 18080, "pgbouncer": 18090, "haproxy": 18091,
                               "instances": [18001, 18002, 18003][:instances],
                               "metrics": [18101, 18102, 18103][:instances],
                               "monitoring": {"nginx_stub": 18110}},
                     "secrets": {"secret_key": "k" * 48, "app": "a"}}
    return cluster


def test_the_front_retries_reads_on_the_next_instance_and_never_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTH_RATE_LIMIT", "0")
    text = fake_cluster(tmp_path).front.config()
    assert "server 127.0.0.1:18001;" in text and "server 127.0.0.1:18002;" in text
    assert text.count("\n        error_page 418 = @write;\n") == 1
    root = text[text.index("        location / {"):text.index("        location @write {")]
    assert "if ($request_method !~ ^(GET|HEAD)$)" in root and "return 418;" in root
    assert "proxy_next_upstream error timeout http_502 http_503 http_504;" in root
    write = text[text.index("        location @write {"):]
    assert "proxy_next_upstream off;" in write.split("}")[0]


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                    reason="nginx is not installed")
@pytest.mark.e2e
def test_nginx_accepts_the_front_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTH_RATE_LIMIT", "30")
    cluster = fake_cluster(tmp_path)
    run_dir = cluster.front.run_dir
    for sub in ("", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(cluster.front.config(drained={0}))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run([nginx, "-t", "-e", "stderr", "-p", str(run_dir), "-c", str(conf)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr


def test_db_pgbouncer_switch_drops_prepared_statements_and_options():
    env = {"DATABASE_URL": "postgresql://u@127.0.0.1:1/d", "SECRET_KEY": "s" * 40,
           "WIDGETSVC_ENV": "test"}
    assert Config.from_env(env).pgbouncer is False
    assert Config.from_env({**env, "DB_PGBOUNCER": "1"}).pgbouncer is True
    direct = Database(env["DATABASE_URL"]).pool.kwargs
    assert "statement_timeout" in direct["options"] and "prepare_threshold" not in direct
    bounced = Database(env["DATABASE_URL"], pgbouncer=True).pool.kwargs
    assert bounced["prepare_threshold"] is None and "options" not in bounced


def test_bootstrap_sets_the_session_settings_the_options_would_have(tmp_path):
    """What ``options`` carries in db.py is what the role gets in the database."""
    from widgetsvc.db import SQL_DIR, load_queries

    ddl = load_queries(SQL_DIR / "cluster")["role_settings_ddl"]
    options = Database("postgresql://u@127.0.0.1:1/d").pool.kwargs["options"]
    for name in ("statement_timeout", "TimeZone", "jit", "plan_cache_mode"):
        assert f"-c {name}=" in options and f"'{name}'" in ddl


def test_patronis_rest_api_and_etcd_ask_for_credentials():
    """Issue 18: no local user may change Patroni's configuration or etcd's keys unasked."""
    config = yaml.safe_load(render("patroni/patroni.yml.template", **VALUES))
    assert config["restapi"]["authentication"] == {"username": "patroni", "password": "r"}
    assert (config["etcd3"]["username"], config["etcd3"]["password"]) == ("patroni", "e")
    haproxy = render("haproxy/haproxy.cfg.template", **VALUES)
    assert 'http-check send hdr Authorization "Basic cGF0cm9uaTpy"' in haproxy


def test_a_drained_instance_is_marked_down_in_the_rendered_upstream(tmp_path, monkeypatch):
    """bin/cluster upgrade drains through the template, not by editing nginx text."""
    monkeypatch.setenv("AUTH_RATE_LIMIT", "0")
    text = fake_cluster(tmp_path).front.config(drained={1})
    assert "        server 127.0.0.1:18001;\n" in text
    assert "        server 127.0.0.1:18002 down;\n" in text
    assert "{{" not in text and "${" not in text


def test_stub_status_listens_internally_never_on_the_public_port(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTH_RATE_LIMIT", "0")
    text = fake_cluster(tmp_path).front.config()
    public = text[text.index("listen 127.0.0.1:18080;"):text.index("listen 127.0.0.1:18110;")]
    internal = text[text.index("listen 127.0.0.1:18110;"):]
    assert "location = /stub_status" not in public
    assert "location = /stub_status { stub_status; }" in internal


def test_the_single_front_leaves_the_cluster_placeholders_empty(tmp_path):
    """``bin/serve``'s front: no retry rule, no @write, no stub_status, nothing left over."""
    from widgetsvc.ops import front

    text = front.render(["127.0.0.1:18001"], "127.0.0.1:18080", tmp_path)
    assert "@write" not in text and "stub_status" not in text and "{{" not in text
    assert "        location / {\n\n            proxy_pass http://widgetsvc;\n        }" in text


class _Recorder(Part):
    """A part whose process is a flag: what ``Part.up`` calls, in order."""

    name = "recorder"

    def __init__(self, state, *, changed: bool, running: bool):
        super().__init__(state)
        self.changed, self.alive, self.calls = changed, running, []

    def render(self) -> bool:
        self.calls.append("render")
        return self.changed

    @property
    def running(self) -> bool:
        return self.alive

    def reload(self) -> None:
        self.calls.append("reload")

    def start(self, log) -> None:
        self.calls.append("start")
        self.alive = True

    def wait(self, timeout=None) -> None:
        self.calls.append("wait")


@pytest.mark.parametrize(("changed", "running", "calls"), [
    (False, False, ["render", "start", "wait"]),
    (True, False, ["render", "start", "wait"]),
    (True, True, ["render", "reload", "wait"]),
    (False, True, ["render", "wait"]),
])
def test_every_part_comes_up_by_one_sequence(tmp_path, changed, running, calls):
    part = _Recorder(fake_cluster(tmp_path), changed=changed, running=running)
    assert part.up(print) is (not running)
    assert part.calls == calls


def test_every_process_of_the_cluster_is_a_part(tmp_path):
    """etcd, Patroni x 2, HAProxy, PgBouncer, the instances, the front and the monitoring:
    each a Part with its own name, so up, down and status treat them alike."""
    from widgetsvc.ops.cluster import monitoring

    cluster = fake_cluster(tmp_path)
    parts = [cluster.etcd, *cluster.patroni, cluster.haproxy, cluster.pgbouncer,
             *cluster.instances(), cluster.front, *monitoring.parts(cluster)]
    assert all(isinstance(part, Part) for part in parts)
    names = [part.name for part in parts]
    assert len(set(names)) == len(names) == 13
    assert {"etcd", "patroni-pg1", "instance-2", "nginx", "prometheus"} <= set(names)
