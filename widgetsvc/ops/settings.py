"""The tools' settings: every environment variable ``bin/serve``, ``bin/localdb``,
``bin/migrate``, ``bin/cluster`` and ``bin/backup`` read, parsed once, each default here.

The service's own configuration is :class:`widgetsvc.config.Config` (what the app reads); this
is the other side's: where to listen, which server, who the parts run as, the private clusters,
migrations, backups and the cluster. ``ToolSettings.from_env(env)`` refuses the first bad value
in the one-line format (``widgetsvc.setting_errors``); nothing is ever written back into the
environment: a tool that needs more variables for a child builds that child's environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from widgetsvc import config, setting_errors
from widgetsvc.config import whole
from widgetsvc.ops import plumbing

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SERVERS = ("gunicorn", "granian")
DEFAULT_SERVER = "gunicorn"
DEFAULT_GRANIAN_APP = "widgetsvc.wsgi:app"
DEFAULT_GRACEFUL_TIMEOUT = 30
DEFAULT_TIMEOUT = 30
DEFAULT_KEEPALIVE = 5
WORKER_CLASSES = ("sync", "gthread")
# What gunicorn.conf.py reads beyond the service's own variables (config.ENV_NAMES) and where
# it listens.
GUNICORN_ENV_NAMES = ("GUNICORN_WORKER_CLASS", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT",
                      "GUNICORN_KEEPALIVE")
DEFAULT_WORKER_CLASS = "sync"
# nginx's limit_req is a flood ceiling above the application's quota (widgetsvc/auth/
# ratelimit.py): twice its rate, and a burst of the whole quota, so that a client within the
# quota never meets it, whichever way the quota's fixed window and nginx's bucket line up.
FLOOD_FACTOR = 2
DEFAULT_LOCK_TIMEOUT = "2s"
DEFAULT_RETRIES = 5
DEFAULT_BACKUP_RETENTION = 2
DEFAULT_PGBOUNCER_POOL_SIZE = 20
DEFAULT_PATH = "/usr/bin:/bin"
PG_OWNERS = ("postgres", "nobody")  # as root, the private clusters' owner: the first that exists
NGINX_USERS = ("www-data", "nobody")

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_LOCK_TIMEOUT = re.compile(r"^[1-9][0-9]{0,8}(ms|s|min)?$")


def listen_address(host: str, port: int | str) -> str:
    """``HOST:PORT`` as nginx's ``listen`` wants it (IPv6 in brackets), refused in one line
    when either could carry anything else into its configuration."""
    port = str(port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise setting_errors.bad_setting("PORT", port, "not a TCP port number", "1 to 65535")
    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise setting_errors.bad_setting("HOST", host, "not an address or a host name",
                                             "an IPv4/IPv6 address or a host name") from None
        return f"{host}:{port}"
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def parse_trusted_proxies(raw: str) -> tuple[str, ...]:
    """``TRUSTED_PROXIES``: comma-separated addresses or networks (``10.0.0.0/8``)."""
    proxies = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            proxies.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise setting_errors.bad_setting(
                "TRUSTED_PROXIES", raw, f"{item!r} is not an address or network",
                "comma-separated addresses or networks, e.g. 10.0.0.0/8") from None
    return tuple(proxies)


def _absolute(env: Mapping[str, str], name: str, allowed: str) -> Path | None:
    raw = env.get(name, "")
    if raw and not Path(raw).is_absolute():
        raise setting_errors.bad_setting(name, raw, "not an absolute path", allowed)
    return Path(raw) if raw else None


def _user(env: Mapping[str, str], name: str) -> str:
    """An OS user to run a part as: it must exist and not be root (checked when named)."""
    wanted = env.get(name, "").strip()
    if wanted:
        plumbing.os_user(name, wanted)
    return wanted


@dataclass(frozen=True)
class FrontSettings:
    """The nginx front's limits (README, "Configuration")."""

    auth_rate_limit: int = config.AUTH_RATE_LIMIT_DEFAULT  # per minute per address (§8.8)
    trusted_proxies: tuple[str, ...] = ()
    auth_conn_limit: int = 0
    auth_in_flight: int | None = None  # None: the instance's hashing slots

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FrontSettings:
        env = os.environ if env is None else env
        allowed = "0 = off, or a positive whole number"
        return cls(
            auth_rate_limit=config.auth_rate_limit(env),
            trusted_proxies=parse_trusted_proxies(env.get("TRUSTED_PROXIES", "")),
            auth_conn_limit=whole(env, "AUTH_CONN_LIMIT", 0, allowed, 0),
            auth_in_flight=(whole(env, "AUTH_IN_FLIGHT", 0, allowed, 0)
                            if env.get("AUTH_IN_FLIGHT", "").strip() else None),
        )

    def limits(self, hash_slots: int) -> dict:
        """The numbers ``front.render()`` puts into nginx; ``hash_slots``: the upstreams'
        hashing slots in all, the login gate's size unless ``AUTH_IN_FLIGHT`` sets it. The
        application counts ``AUTH_RATE_LIMIT`` per minute; nginx's limit is the flood ceiling
        above it."""
        return {
            "auth_rate_limit": FLOOD_FACTOR * self.auth_rate_limit,
            "auth_burst": self.auth_rate_limit,
            "auth_rate_quota": self.auth_rate_limit,
            "auth_conn_limit": self.auth_conn_limit,
            "auth_in_flight": hash_slots if self.auth_in_flight is None else self.auth_in_flight,
            "trusted_proxies": self.trusted_proxies,
        }


@dataclass(frozen=True)
class ToolSettings:
    """What the tools read from the environment, checked (README, "Configuration")."""

    database_url: str = ""  # empty: the private cluster in var/pg
    secret_key: str = field(default="", repr=False)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    direct: bool = False
    server: str = DEFAULT_SERVER
    granian_app: str = ""  # empty: bin/serve's choice (DEFAULT_GRANIAN_APP, or its argument)
    workers: int = field(default_factory=config.default_workers)
    worker_class: str = DEFAULT_WORKER_CLASS
    threads: int = config.DEFAULT_THREADS
    timeout: int = DEFAULT_TIMEOUT
    graceful_timeout: int = DEFAULT_GRACEFUL_TIMEOUT
    keepalive: int = DEFAULT_KEEPALIVE
    gunicorn_socket: Path | None = None  # None: gunicorn listens on HOST:PORT
    log_level: str = config.DEFAULT_LOG_LEVEL.lower()
    pg_os_user: str = ""
    nginx_user: str = ""
    app_user: str = ""
    pg_fsync: bool = True
    state_home: Path | None = None  # None: ~/.local/state
    front: FrontSettings = field(default_factory=FrontSettings)
    migrate_lock_timeout: str = DEFAULT_LOCK_TIMEOUT
    migrate_retries: int = DEFAULT_RETRIES
    backup_repo: Path | None = None  # None: var/backups
    backup_retention: int = DEFAULT_BACKUP_RETENTION
    cluster_dir: Path | None = None  # None: var/cluster
    pgbouncer_pool_size: int = DEFAULT_PGBOUNCER_POOL_SIZE
    path: str = DEFAULT_PATH  # PATH for the parts started with an environment of their own

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ToolSettings:
        """The settings in ``env`` (default: the process environment); the first bad value
        raises a SettingError (one line)."""
        env = os.environ if env is None else env
        host = env.get("HOST", "").strip() or DEFAULT_HOST
        port = env.get("PORT", "").strip() or str(DEFAULT_PORT)
        listen_address(host, port)
        direct = config.yes_no(env, "WIDGETSVC_DIRECT")
        server = env.get("WIDGETSVC_SERVER", "").strip() or DEFAULT_SERVER
        if server not in SERVERS:
            raise setting_errors.bad_setting("WIDGETSVC_SERVER", server,
                                             "not a server bin/serve runs", " or ".join(SERVERS))
        granian_app = env.get("WIDGETSVC_GRANIAN_APP", "").strip()
        module, _, name = granian_app.partition(":")
        if granian_app and not (name.isidentifier()
                                and all(part.isidentifier() for part in module.split("."))):
            raise setting_errors.bad_setting(
                "WIDGETSVC_GRANIAN_APP", granian_app, "not a WSGI app's name",
                f"MODULE:CALLABLE, e.g. {DEFAULT_GRANIAN_APP}; bin/serve sets it")
        worker_class = env.get("GUNICORN_WORKER_CLASS", "").strip() or DEFAULT_WORKER_CLASS
        if worker_class not in WORKER_CLASSES:
            raise setting_errors.bad_setting("GUNICORN_WORKER_CLASS", worker_class,
                                             "not a worker class installed here",
                                             " or ".join(WORKER_CLASSES))
        seconds = "seconds, 0 or more"
        fsync = env.get("WIDGETSVC_PG_FSYNC", "").strip()
        if fsync not in ("", "on", "off"):
            raise setting_errors.bad_setting("WIDGETSVC_PG_FSYNC", fsync, "unknown value",
                                             "off, or unset / on")
        lock_timeout = env.get("MIGRATE_LOCK_TIMEOUT", "").strip() or DEFAULT_LOCK_TIMEOUT
        if not _LOCK_TIMEOUT.match(lock_timeout):
            raise setting_errors.bad_setting("MIGRATE_LOCK_TIMEOUT", lock_timeout,
                                             "not a duration",
                                             "a positive duration such as 5s, 500ms or 1min")
        retries = env.get("MIGRATE_RETRIES", "").strip() or str(DEFAULT_RETRIES)
        if not retries.isdigit() or int(retries) > 100:
            raise setting_errors.bad_setting("MIGRATE_RETRIES", retries,
                                             "not a number of retries",
                                             "a whole number from 0 to 100")
        backup_repo = _absolute(env, "BACKUP_REPO",
                                "an absolute directory path; unset: var/backups")
        if backup_repo is not None and backup_repo.exists() and not backup_repo.is_dir():
            raise setting_errors.bad_setting("BACKUP_REPO", str(backup_repo),
                                             "exists and is not a directory",
                                             "an absolute directory path; unset: var/backups")
        kept = env.get("BACKUP_RETENTION", "").strip()
        if kept and (not kept.isdigit() or not 1 <= int(kept) <= 9999999):
            raise setting_errors.bad_setting("BACKUP_RETENTION", kept,
                                             "not a whole number from 1",
                                             "full backups kept, e.g. 2; unset: "
                                             f"{DEFAULT_BACKUP_RETENTION}")
        cluster_dir = env.get("WIDGETSVC_CLUSTER_DIR", "")
        if cluster_dir and os.path.exists(cluster_dir) and not os.path.isdir(cluster_dir):
            raise setting_errors.bad_setting("WIDGETSVC_CLUSTER_DIR", cluster_dir,
                                             "exists and is not a directory",
                                             "a directory, or a path to create one at")
        pool = env.get("PGBOUNCER_POOL_SIZE", "").strip()
        if pool and (not pool.isdigit() or int(pool) < 1):
            raise setting_errors.bad_setting(
                "PGBOUNCER_POOL_SIZE", pool, "not a positive whole number",
                "server connections per database/user pair, at least 1")
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            secret_key=env.get("SECRET_KEY", ""),
            host=host,
            port=int(port),
            direct=direct,
            server=server,
            granian_app=granian_app,
            workers=config.web_concurrency(env),
            worker_class=worker_class,
            threads=config.gunicorn_threads(env),
            timeout=whole(env, "GUNICORN_TIMEOUT", DEFAULT_TIMEOUT, seconds, 0),
            graceful_timeout=whole(env, "GUNICORN_GRACEFUL_TIMEOUT", DEFAULT_GRACEFUL_TIMEOUT,
                                   seconds, 0),
            keepalive=whole(env, "GUNICORN_KEEPALIVE", DEFAULT_KEEPALIVE, seconds, 0),
            gunicorn_socket=_absolute(env, "WIDGETSVC_GUNICORN_SOCKET",
                                      "an absolute path, or unset"),
            log_level=config.log_level(env).lower(),
            pg_os_user=_user(env, "WIDGETSVC_PG_OS_USER"),
            nginx_user=_user(env, "WIDGETSVC_NGINX_USER"),
            app_user=_user(env, "WIDGETSVC_APP_USER"),
            pg_fsync=fsync != "off",
            state_home=_absolute(env, "XDG_STATE_HOME",
                                 "an absolute path; unset: ~/.local/state"),
            front=FrontSettings.from_env(env),
            migrate_lock_timeout=lock_timeout,
            migrate_retries=int(retries),
            backup_repo=backup_repo,
            backup_retention=int(kept) if kept else DEFAULT_BACKUP_RETENTION,
            cluster_dir=Path(cluster_dir).resolve() if cluster_dir else None,
            pgbouncer_pool_size=int(pool) if pool else DEFAULT_PGBOUNCER_POOL_SIZE,
            path=env.get("PATH", "") or DEFAULT_PATH,
        )

    @property
    def listen(self) -> str:
        """Where the front (or, direct, the server) listens, as nginx writes it."""
        return listen_address(self.host, self.port)
