"""One cluster on this machine: its directory, state file, and bringing each part up and down.

Order up: etcd -> Patroni x 2 (each runs its PostgreSQL) -> HAProxy -> role, database and
migrations -> PgBouncer -> instances -> nginx. Down is the reverse. Every part runs in its own
session under an unprivileged OS user (the service's instances run as the caller, like
``bin/serve``), on loopback ports picked once and kept in ``state.json``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from widgetsvc.config import Config
from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.ops import front, localdb, plumbing, safefs
from widgetsvc.ops.cluster import monitoring
from widgetsvc.ops.cluster.packages import ensure_packages, which
from widgetsvc.ops.cluster.render import DEPLOY_DIR, render, write

HOST = "127.0.0.1"
SCOPE = "widgetsvc"
DBNAME = "widgetsvc"
APP_ROLE = "widgetsvc"
SUPERUSER = "postgres"
PATRONI_USER = "patroni"  # Patroni's REST API (basic auth) and its etcd user
ETCD_PREFIX = "/service/"  # Patroni's namespace in etcd: all its etcd user may touch
NODES = ("pg1", "pg2")
STATE_VERSION = 1
# Stop order (reverse of start); instances are added in between as "instance-N".
_BACKEND_ORDER = ["etcd", "patroni-pg1", "patroni-pg2", "haproxy", "pgbouncer"]


# Settings whose change restarts the instances on the next ``up``.
_INSTANCE_SETTINGS = ("DATABASE_URL", "DB_PGBOUNCER", "SECRET_KEY", "WIDGETSVC_ENV",
                      "BCRYPT_ROUNDS", "TOKEN_LIFETIME", "DB_POOL_MIN", "DB_POOL_MAX",
                      "WEB_CONCURRENCY", "GUNICORN_WORKER_CLASS", "GUNICORN_THREADS",
                      "HASH_SLOTS", "LOGIN_LOCK_FAILURES", "LOGIN_LOCK_WINDOW",
                      "LOGIN_LOCK_ACCOUNT_FAILURES", "PUBLIC_URL",
                      "ALLOWED_HOSTS", "TOKEN_LEEWAY", "LOG_LEVEL")


class ClusterError(RuntimeError):
    """The cluster could not be brought up (the message carries the failing part's log)."""


def reachable_dir(wanted: Path) -> Path:
    """A directory the unprivileged owner can reach: ``wanted``, or where localdb relocates
    clusters whose path it cannot traverse (a clone under a private home, for instance)."""
    helper = getattr(localdb, "reachable_dir", None)
    if callable(helper):
        return Path(helper(wanted))
    return localdb.LocalCluster(wanted).root


def default_dir() -> Path:
    wanted = os.environ.get("WIDGETSVC_CLUSTER_DIR")
    return reachable_dir(Path(wanted).resolve() if wanted else localdb.VAR_DIR / "cluster")


def _owner() -> pwd.struct_passwd:
    """The unprivileged user PostgreSQL runs as: localdb decides (``cluster_owner``, formerly
    ``_owner``)."""
    pick = getattr(localdb, "cluster_owner", None) or localdb._owner  # noqa: SLF001
    return pick()


def _http_json(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


def _post_json(url: str, body: dict, headers: dict[str, str] | None = None,
               timeout: float = 5.0) -> dict:
    """POST ``body``; the JSON answer, an error's too (etcd's API answers errors in JSON)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read() or b"{}")
        except ValueError:
            return {"error": f"HTTP {exc.code}"}


def _http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass
class Options:
    instances: int = 2
    pgbouncer: bool = True


class Cluster:
    """The cluster kept in ``root``; ``state.json`` there records ports, secrets and pids."""

    def __init__(self, root: Path | None = None):
        self.root = reachable_dir(Path(root).resolve()) if root else default_dir()
        self.state_path = self.root / "state.json"
        self.state: dict[str, Any] = self._load()

    # -- state --------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(safefs.read_text(self.state_path) or "")
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        # Root's own file, but in the owner's directory: never through a link (safefs).
        safefs.write_file(self.state_path, json.dumps(self.state, indent=2), 0o600)

    @property
    def exists(self) -> bool:
        return bool(self.state)

    @property
    def pids(self) -> dict[str, list]:
        return self.state.setdefault("pids", {})

    def _record(self, name: str, record: list | None) -> None:
        if record is None:
            self.pids.pop(name, None)
        else:
            self.pids[name] = record
        self._save()

    def _new_state(self, options: Options) -> None:
        etcd_client, etcd_peer, haproxy, pgbouncer, front, *rest = plumbing.free_ports(
            5 + 2 * len(NODES))
        self.state = {
            "version": STATE_VERSION,
            "host": HOST,
            "ports": {
                "etcd_client": etcd_client, "etcd_peer": etcd_peer, "haproxy": haproxy,
                "pgbouncer": pgbouncer, "front": front,
                "postgres": rest[: len(NODES)], "patroni": rest[len(NODES):],
                "instances": [],
            },
            "secrets": {
                "superuser": secrets.token_urlsafe(24),
                "replication": secrets.token_urlsafe(24),
                "app": secrets.token_urlsafe(24),
                "etcd_token": secrets.token_hex(8),
            },
            "pids": {},
        }

    def _apply_options(self, options: Options) -> None:
        # Credentials of Patroni's REST API and of etcd (a state from before they existed
        # gets them here too); state.json is root's, 0600.
        for name in ("patroni_rest", "etcd_root", "etcd_patroni"):
            self.state["secrets"].setdefault(name, secrets.token_urlsafe(24))
        self.state["instances"] = options.instances
        self.state["pgbouncer"] = options.pgbouncer
        ports = self.state["ports"]["instances"]
        if len(ports) < options.instances:
            ports.extend(plumbing.free_ports(options.instances - len(ports)))
        self._replace_taken_ports()
        # The secret the instances sign with: the caller's SECRET_KEY, else one kept here.
        secret = os.environ.get("SECRET_KEY") or self.state["secrets"].get("secret_key")
        self.state["secrets"]["secret_key"] = secret or secrets.token_urlsafe(48)

    def _replace_taken_ports(self) -> None:
        """A stopped part whose port something else took meanwhile gets a new free one (the
        configuration files are rendered again on every ``up``)."""
        ports = self.state["ports"]
        owners: list[tuple[str, str, int | None]] = [
            ("etcd", "etcd_client", None), ("etcd", "etcd_peer", None),
            ("haproxy", "haproxy", None), ("pgbouncer", "pgbouncer", None),
            ("nginx", "front", None)]
        owners += [(f"patroni-{node}", key, i) for i, node in enumerate(NODES)
                   for key in ("postgres", "patroni")]
        owners += [(f"instance-{i + 1}", "instances", i) for i in range(len(ports["instances"]))]
        for part, key, index in owners:
            port = ports[key] if index is None else ports[key][index]
            if plumbing.alive(self.pids.get(part)) or plumbing.port_free(port):
                continue
            (fresh,) = plumbing.free_ports(1)
            if index is None:
                ports[key] = fresh
            else:
                ports[key][index] = fresh

    # -- paths and urls -----------------------------------------------------------------------
    @property
    def ports(self) -> dict[str, Any]:
        return self.state["ports"]

    def node_dir(self, node: str) -> Path:
        return self.root / node

    def socket_dir(self, node: str) -> Path:
        preferred = self.node_dir(node) / "run"
        if len(str(preferred)) + len("/.s.PGSQL.65535") <= 100:
            return preferred
        digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"widgetsvc-{digest}"

    def leader_url(self, user: str = APP_ROLE, dbname: str = DBNAME) -> str:
        """The database through HAProxy: always the leader, a whole session of its own
        (migrations, bin/add-user, administration)."""
        password = self.state["secrets"]["app" if user == APP_ROLE else "superuser"]
        return f"postgresql://{user}:{password}@{HOST}:{self.ports['haproxy']}/{dbname}"

    def app_url(self) -> str:
        """What the instances use: PgBouncer, or HAProxy with ``--no-pgbouncer``."""
        port = self.ports["pgbouncer"] if self.state.get("pgbouncer") else self.ports["haproxy"]
        return f"postgresql://{APP_ROLE}:{self.state['secrets']['app']}@{HOST}:{port}/{DBNAME}"

    @property
    def front_url(self) -> str:
        return f"http://{HOST}:{self.ports['front']}"

    def instance_url(self, index: int) -> str:
        return f"http://{HOST}:{self.ports['instances'][index]}"

    def rest_url(self, index: int) -> str:
        return f"http://{HOST}:{self.ports['patroni'][index]}"

    @property
    def rest_auth(self) -> dict[str, str]:
        """The Authorization header Patroni's REST API wants for changes."""
        return {"Authorization": f"Basic {self._rest_basic()}"}

    def _rest_basic(self) -> str:
        password = self.state.get("secrets", {}).get("patroni_rest", "")
        return base64.b64encode(f"{PATRONI_USER}:{password}".encode()).decode()

    def etcd_url(self, path: str) -> str:
        return f"http://{HOST}:{self.ports['etcd_client']}/v3/{path}"

    # -- up -----------------------------------------------------------------------------------
    def up(self, options: Options, log=print) -> None:
        ensure_packages()
        self.bindir = localdb.ensure_bindir()
        self.owner = _owner()
        self._make_root()
        if not self.exists:
            self._new_state(options)
        self._apply_options(options)
        monitoring.assign_ports(self)
        self._save()
        from widgetsvc.ops.cluster import backup as backups  # WAL archiving (bin/backup --cluster)

        backups.prepare(self)
        self._start_etcd(log)
        for index, node in enumerate(NODES):
            self._start_patroni(index, node, log)
        self._wait_replicated(log)
        self._start_haproxy(log)
        self._bootstrap_database(log)
        backups.after_up(self, log)
        if self.state["pgbouncer"]:
            self._start_pgbouncer(log)
        else:
            self._stop_part("pgbouncer")
        self._start_instances(log)
        self._start_front(log)
        monitoring.start(self, log)
        log(f"cluster: up, front at {self.front_url}")

    def _make_root(self) -> None:
        # Parents traversable by the owner; the root (and below) the owner's, 0700.
        safefs.make_dir(self.root, self.owner)

    def _private_dir(self, path: Path) -> Path:
        """The owner's directory, 0700; a link or another user's directory there is refused
        (the cluster's directory is the owner's, and a socket directory may be in /tmp)."""
        return safefs.make_dir(path, self.owner)

    def _config(self, path: Path, text: str) -> bool:
        return write(path, text, owner=self.owner)

    def _base_env(self) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                "HOME": str(self.root)}

    def _start_part(self, name: str, argv: list[str], log_path: Path, *,
                    env: dict[str, str] | None = None, as_owner: bool = True) -> list:
        record = plumbing.start(argv, log=log_path, env=env or self._base_env(), cwd=self.root,
                             user=self.owner if as_owner else None)
        self._record(name, record)
        return record

    def _start_etcd(self, log) -> None:
        data = self._private_dir(self.root / "etcd")
        config = self.root / "etcd.yml"
        self._config(config, render(
            "etcd/etcd.yml.template", name="etcd1", data_dir=data, host=HOST,
            client_port=self.ports["etcd_client"], peer_port=self.ports["etcd_peer"],
            token=self.state["secrets"]["etcd_token"]))
        url = f"http://{HOST}:{self.ports['etcd_client']}/health"
        if not plumbing.alive(self.pids.get("etcd")):
            log("cluster: starting etcd")
            record = self._start_part("etcd", [which("etcd"), "--config-file", str(config)],
                                      self.root / "etcd.log")
        else:
            record = self.pids["etcd"]
        plumbing.wait_until(lambda: _http_json(url).get("health") == "true", timeout=60,
                         what="etcd", log=self.root / "etcd.log", record=record)
        self._secure_etcd(log)

    def _secure_etcd(self, log) -> None:
        """etcd with authentication on (once; it is kept in etcd's data): a root user, and a
        ``patroni`` user that may read and write Patroni's keys alone. Without it any local
        user could write the leader lock or the cluster's configuration."""
        keys = self.state["secrets"]
        answer = _post_json(self.etcd_url("auth/authenticate"),
                            {"name": "root", "password": keys["etcd_root"]})
        if "token" in answer:
            return
        if "not enabled" not in answer.get("error", ""):
            raise ClusterError(f"etcd authentication: {answer.get('error', answer)}")
        log("cluster: enabling etcd authentication")
        for node in NODES:  # a cluster made before: its Patroni would lose etcd (restarted)
            if plumbing.alive(self.pids.get(f"patroni-{node}")):
                log(f"cluster: stopping Patroni {node}: it restarts with etcd's credentials")
                self._stop_part(f"patroni-{node}", timeout=60)
        prefix = ETCD_PREFIX.encode()
        grant = {"permType": "READWRITE", "key": base64.b64encode(prefix).decode(),
                 "range_end": base64.b64encode(prefix[:-1] + bytes([prefix[-1] + 1])).decode()}
        for path, body in (
            ("auth/user/add", {"name": "root", "password": keys["etcd_root"]}),
            ("auth/role/add", {"name": "root"}),
            ("auth/user/grant", {"user": "root", "role": "root"}),
            ("auth/role/add", {"name": PATRONI_USER}),
            ("auth/role/grant", {"name": PATRONI_USER, "perm": grant}),
            ("auth/user/add", {"name": PATRONI_USER, "password": keys["etcd_patroni"]}),
            ("auth/user/grant", {"user": PATRONI_USER, "role": PATRONI_USER}),
            ("auth/enable", {}),
        ):
            answer = _post_json(self.etcd_url(path), body)
            error = answer.get("error", "")
            if error and "already exists" in error and path == "auth/user/add":
                answer = _post_json(self.etcd_url("auth/user/changepw"), body)  # a half setup
                error = answer.get("error", "")
            if error and "already" not in error:
                raise ClusterError(f"etcd {path}: {error}")

    def _start_patroni(self, index: int, node: str, log) -> None:
        from widgetsvc.ops.cluster.backup import node_archive_command

        directory = self._private_dir(self.node_dir(node))
        self._private_dir(self.socket_dir(node))
        config = directory / "patroni.yml"
        changed = self._config(config, render(
            "patroni/patroni.yml.template", scope=SCOPE, name=node, host=HOST,
            rest_port=self.ports["patroni"][index], pg_port=self.ports["postgres"][index],
            etcd_hosts=f"{HOST}:{self.ports['etcd_client']}",
            data_dir=directory / "data", bin_dir=self.bindir, pgpass=directory / "pgpass",
            superuser_password=self.state["secrets"]["superuser"],
            replication_password=self.state["secrets"]["replication"],
            rest_username=PATRONI_USER, rest_password=self.state["secrets"]["patroni_rest"],
            etcd_username=PATRONI_USER, etcd_password=self.state["secrets"]["etcd_patroni"],
            socket_dir=self.socket_dir(node), hba_network=f"{HOST}/32", max_connections=200,
            archive_command=node_archive_command(self, node)))
        name = f"patroni-{node}"
        if plumbing.alive(self.pids.get(name)):
            if changed:
                os.kill(int(self.pids[name][0]), signal.SIGHUP)  # Patroni reloads its file
            return
        log(f"cluster: starting Patroni {node}")
        env = {**self._base_env(), "HOME": str(directory), "PYTHONUNBUFFERED": "1"}
        self._start_part(name, [which("patroni"), str(config)], directory / "patroni.log",
                         env=env)

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view (GET /cluster) from the first node that answers."""
        for index in range(len(NODES)):
            try:
                return _http_json(f"{self.rest_url(index)}/cluster",
                                  headers=self.rest_auth)["members"]
            except (OSError, ValueError, KeyError):
                continue
        return []

    def _wait_replicated(self, log, timeout: float = 120) -> None:
        """Until there is a leader and every node runs with it (one as synchronous standby)."""
        log("cluster: waiting for the leader and the synchronous standby")

        def ready() -> bool:
            members = self.members()
            roles = sorted(m.get("role", "") for m in members)
            return (len(members) == len(NODES) and "leader" in roles and "sync_standby" in roles
                    and all(m.get("state") in ("running", "streaming") for m in members))

        try:
            plumbing.wait_until(ready, timeout=timeout, what="Patroni cluster")
        except RuntimeError as exc:
            logs = "\n".join(plumbing.tail(self.node_dir(n) / "patroni.log") for n in NODES)
            raise ClusterError(f"{exc}\n{logs}") from None

    def _start_haproxy(self, log) -> None:
        servers = "\n".join(
            f"    server {node} {HOST}:{self.ports['postgres'][i]} maxconn 500 "
            f"check port {self.ports['patroni'][i]}"
            for i, node in enumerate(NODES))
        config = self.root / "haproxy.cfg"
        changed = self._config(config, render(
            "haproxy/haproxy.cfg.template", host=HOST, port=self.ports["haproxy"],
            servers=servers, stats_socket=self.root / "haproxy.sock",
            rest_basic=self._rest_basic()))
        record = self.pids.get("haproxy")
        if plumbing.alive(record) and changed:
            self._stop_part("haproxy")
        if not plumbing.alive(self.pids.get("haproxy")):
            log("cluster: starting HAProxy")
            record = self._start_part("haproxy", [which("haproxy"), "-db", "-f", str(config)],
                                      self.root / "haproxy.log")
        self._wait_leader_reachable(timeout=60)

    def haproxy_servers(self) -> dict[str, str]:
        """HAProxy's view: server name -> "UP", "DOWN", "UP 1/2" ... (its stats socket)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.root / "haproxy.sock"))
            sock.sendall(b"show stat\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        rows = list(csv.reader(raw.decode().lstrip("# ").splitlines()))
        header, body = rows[0], [r for r in rows[1:] if r]
        name, status = header.index("svname"), header.index("status")
        return {r[name]: r[status] for r in body if r[name] not in ("FRONTEND", "BACKEND")}

    def _wait_leader_reachable(self, timeout: float) -> None:
        """Until HAProxy routes to the leader alone. It starts with every server up, until the
        first checks of the replica fail: a connection then could reach the replica."""
        is_primary = load_queries(SQL_DIR / "cluster")["is_primary"]

        def primary() -> bool:
            leader = next((m["name"] for m in self.members() if m.get("role") == "leader"), None)
            servers = self.haproxy_servers()
            if leader is None or servers.get(leader) != "UP" or any(
                    state != "DOWN" for name, state in servers.items() if name != leader):
                return False
            with psycopg.connect(self.leader_url(SUPERUSER, "postgres"), connect_timeout=2,
                                 autocommit=True) as conn:
                return conn.execute(is_primary).fetchone()[0]

        plumbing.wait_until(primary, timeout=timeout, what="the leader through HAProxy",
                         log=self.root / "haproxy.log", record=self.pids.get("haproxy"))

    def _bootstrap_database(self, log) -> None:
        """The service's role and database (idempotent), its session settings, migrations."""
        from widgetsvc.ops.migrate import migrate

        queries = load_queries(SQL_DIR / "cluster")
        timeout = os.environ.get("DB_STATEMENT_TIMEOUT_MS", "5000").strip() or "5000"
        with psycopg.connect(self.leader_url(SUPERUSER, "postgres"), autocommit=True) as conn:
            for name, params in (
                ("role_ddl", {"role": APP_ROLE, "password": self.state["secrets"]["app"]}),
                ("database_ddl", {"dbname": DBNAME, "role": APP_ROLE}),
                ("role_settings_ddl", {"role": APP_ROLE, "dbname": DBNAME,
                                       "statement_timeout": str(int(timeout))}),
            ):
                for (ddl,) in conn.execute(queries[name], params).fetchall():
                    conn.execute(ddl)
        migrate(self.leader_url(), log=lambda msg: log(f"migrate: {msg}"))

    def _start_pgbouncer(self, log) -> None:
        auth_file = self.root / "userlist.txt"
        self._config(auth_file, f'"{APP_ROLE}" "{self.state["secrets"]["app"]}"\n')
        config = self.root / "pgbouncer.ini"
        pool = int(os.environ.get("PGBOUNCER_POOL_SIZE", "20"))
        changed = self._config(config, render(
            "pgbouncer/pgbouncer.ini.template", dbname=DBNAME, upstream_host=HOST,
            upstream_port=self.ports["haproxy"], host=HOST, port=self.ports["pgbouncer"],
            auth_file=auth_file, log_file=self.root / "pgbouncer.log",
            pid_file=self.root / "pgbouncer.pid", pool_size=pool,
            max_db_connections=pool + 4))
        if plumbing.alive(self.pids.get("pgbouncer")) and changed:
            self._stop_part("pgbouncer")
        if not plumbing.alive(self.pids.get("pgbouncer")):
            log("cluster: starting PgBouncer")
            (self.root / "pgbouncer.pid").unlink(missing_ok=True)
            self._start_part("pgbouncer", [which("pgbouncer"), str(config)],
                             self.root / "pgbouncer.out")
        plumbing.wait_until(lambda: plumbing.tcp_open(self.ports["pgbouncer"]), timeout=30,
                         what="PgBouncer", log=self.root / "pgbouncer.log",
                         record=self.pids.get("pgbouncer"))

    def instance_env(self, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "WIDGETSVC_GUNICORN_SOCKET"}
        env.update({
               "DATABASE_URL": self.app_url(),
               "DB_PGBOUNCER": "1" if self.state["pgbouncer"] else "0",
               "SECRET_KEY": self.state["secrets"]["secret_key"],
               "HOST": HOST, "PORT": str(self.ports["instances"][index]),
               # the front reaches the instances over TCP from HOST: its X-Forwarded-For
               # names the client (the failed-login lock's address, docs/API.md §8.1)
               "FORWARDED_ALLOW_IPS": HOST})
        env.update(monitoring.instance_env(self, index))
        return env

    def instance_settings_digest(self) -> str:
        """The settings the instances start with, hashed (``bin/cluster upgrade`` applies a
        change one instance at a time; ``up`` restarts them all)."""
        return hashlib.sha256(json.dumps(
            {k: self.instance_env(0).get(k) for k in _INSTANCE_SETTINGS}).encode()).hexdigest()

    def _start_instances(self, log) -> None:
        count = self.state["instances"]
        # Instances started with other settings (database path, secret, ...) are restarted.
        digest = self.instance_settings_digest()
        if self.state.get("instance_settings") != digest:
            for name in [n for n in self.pids if n.startswith("instance-")]:
                self._stop_part(name)
            self.state["instance_settings"] = digest
        for name in [n for n in self.pids if n.startswith("instance-")]:
            if int(name.split("-")[1]) > count:
                self._stop_part(name)
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        conf = str(localdb.REPO_ROOT / "gunicorn.conf.py")
        started = []
        for index in range(count):
            name = f"instance-{index + 1}"
            if plumbing.alive(self.pids.get(name)):
                continue
            self._stop_part(name)  # workers left behind by a killed master
            log(f"cluster: starting instance {index + 1} on {self.instance_url(index)}")
            env = self.instance_env(index)
            Config.from_env(env)  # a bad setting: one clear line, not a dead instance's log
            record = plumbing.start([gunicorn, "-c", conf], log=self.root / f"{name}.log",
                                 env=env, cwd=localdb.REPO_ROOT)
            self._record(name, record)
            started.append(index)
        for index in started:
            url = f"{self.instance_url(index)}/api/v1/health"
            plumbing.wait_until(lambda url=url: _http_status(url) == 200, timeout=90,
                             what=f"instance {index + 1}",
                             log=self.root / f"instance-{index + 1}.log",
                             record=self.pids.get(f"instance-{index + 1}"))

    def front_config(self, run_dir: Path) -> str:
        """The shared front template (``widgetsvc.ops.front``) for all instances, with the
        cluster's retry rule for reads (``deploy/nginx/cluster-locations.conf``)."""
        settings = front.FrontSettings.from_env()
        # The login gate: every instance's hashing slots together, unless AUTH_IN_FLIGHT is set.
        slots = self.state["instances"] * Config.from_env(self.instance_env(0)).hash_slots
        text = front.render(
            [f"{HOST}:{port}" for port in self.ports["instances"][: self.state["instances"]]],
            front.listen_address(HOST, self.ports["front"]), run_dir, **settings.limits(slots))
        plain = "        location / {\n            proxy_pass http://widgetsvc;\n        }\n"
        listen = f"        listen {front.listen_address(HOST, self.ports['front'])};\n"
        if text.count(plain) != 1 or text.count(listen) != 1:
            raise ClusterError("deploy/nginx/widgetsvc.conf.template changed: its 'location /' "
                               "or 'listen' line is not where bin/cluster expects it")
        locations = (DEPLOY_DIR / "nginx" / "cluster-locations.conf").read_text()
        return monitoring.with_stub_status(self, text.replace(plain, locations).replace(
            listen, listen + "        error_page 418 = @write;\n"))

    def _start_front(self, log) -> None:
        run_dir = self._private_dir(self.root / "nginx")
        config = run_dir / "nginx.conf"
        changed = self._config(config, self.front_config(run_dir))
        record = self.pids.get("nginx")
        if plumbing.alive(record):
            if changed:
                os.kill(int(record[0]), signal.SIGHUP)  # reload: new upstreams or limits
                time.sleep(0.5)
        else:
            self._stop_part("nginx")
            log(f"cluster: starting nginx on {self.front_url}")
            record = self._start_part(
                "nginx", [front.ensure_nginx(), "-e", "stderr", "-p", str(run_dir),
                          "-c", str(config)],
                self.root / "nginx.log")
        url = f"{self.front_url}/api/v1/health"
        plumbing.wait_until(lambda: _http_status(url) == 200, timeout=30, what="nginx",
                         log=self.root / "nginx.log", record=record)

    # -- down ---------------------------------------------------------------------------------
    def _stop_part(self, name: str, timeout: float = 20.0) -> None:
        record = self.pids.get(name)
        if record:
            plumbing.stop(record, timeout=timeout)
            self._record(name, None)

    def down(self, purge: bool = False, log=print) -> None:
        if self.exists:
            instances = sorted((n for n in self.pids if n.startswith("instance-")), reverse=True)
            for name in [*monitoring.PARTS, "nginx", *instances, *reversed(_BACKEND_ORDER)]:
                if name in self.pids:
                    log(f"cluster: stopping {name}")
                    # Patroni stops its PostgreSQL (fast shutdown) before it exits.
                    self._stop_part(name, timeout=60 if name.startswith("patroni") else 20)
            self._stop_orphan_postmasters()
        if purge:
            log(f"cluster: deleting {self.root}")
            for node in NODES:
                if self.socket_dir(node) != self.node_dir(node) / "run":
                    shutil.rmtree(self.socket_dir(node), ignore_errors=True)
            shutil.rmtree(self.root, ignore_errors=True)
            self.state = {}

    def postmaster_pid(self, node: str) -> int | None:
        """The node's running postmaster, from its ``postmaster.pid``."""
        data_dir = self.node_dir(node) / "data"
        try:
            pid = int((data_dir / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        # A stale pid file's pid may since belong to another process: it must be this server.
        if str(data_dir).encode() not in cmdline or plumbing.start_time(pid) is None:
            return None
        return pid

    def _stop_orphan_postmasters(self) -> None:
        """A postmaster whose Patroni was killed keeps running (it has its own session)."""
        for node in NODES:
            pid = self.postmaster_pid(node)
            if pid is None:
                continue
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown
            deadline = time.monotonic() + 20
            while plumbing.start_time(pid) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if plumbing.start_time(pid) is not None:
                plumbing.stop([pid, plumbing.start_time(pid)], sig=signal.SIGKILL, timeout=5)

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        if not self.exists:
            return {"running": False, "dir": str(self.root)}
        members = {m["name"]: m for m in self.members()}
        postgres = []
        for index, node in enumerate(NODES):
            member = members.get(node, {})
            postgres.append({
                "name": node,
                "role": member.get("role"),
                "state": member.get("state"),
                "postmaster_pid": self.postmaster_pid(node),
                "port": self.ports["postgres"][index],
                "patroni_pid": self._pid(f"patroni-{node}"),
                "patroni_url": self.rest_url(index),
                "timeline": member.get("timeline"),
                "lag": member.get("lag"),
            })
        instances = [
            {"pid": self._pid(f"instance-{i + 1}"), "url": self.instance_url(i)}
            for i in range(self.state.get("instances", 0))
        ]
        return {
            "running": plumbing.alive(self.pids.get("nginx")),
            "dir": str(self.root),
            "front": self.front_url,
            "instances": instances,
            "postgres": postgres,
            "haproxy": {"pid": self._pid("haproxy"),
                        "url": f"postgresql://{HOST}:{self.ports['haproxy']}"},
            "pgbouncer": ({"pid": self._pid("pgbouncer"),
                           "url": f"postgresql://{HOST}:{self.ports['pgbouncer']}"}
                          if self.state.get("pgbouncer") else None),
            "etcd": {"pid": self._pid("etcd"),
                     "url": f"http://{HOST}:{self.ports['etcd_client']}"},
            "nginx": {"pid": self._pid("nginx")},
            "prometheus": monitoring.url(self),
        }

    def _pid(self, name: str) -> int | None:
        record = self.pids.get(name)
        return int(record[0]) if plumbing.alive(record) else None

    def all_groups(self) -> list[int]:
        """Process groups of every part ever recorded (for checking nothing is left)."""
        return [int(record[0]) for record in self.pids.values()]
