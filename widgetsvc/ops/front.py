"""The nginx front: its configuration, rendered from ``deploy/nginx/widgetsvc.conf.template``.

``render()`` is the one way to produce a config, for ``bin/serve`` (one gunicorn behind one
nginx) and for any deployment that puts several instances behind one nginx: pass their
addresses as ``upstreams``. Everything that reaches the template is checked here first, so an
environment variable can never inject nginx directives.
"""

from __future__ import annotations

import math
import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

from widgetsvc.ops import apt, localdb, plumbing, safefs, settings
from widgetsvc.ops.localdb import REPO_ROOT
from widgetsvc.ops.settings import (
    FrontSettings,
    ToolSettings,
    listen_address,
    parse_trusted_proxies,
)
from widgetsvc.setting_errors import SettingError


def _template() -> Path:
    """The nginx template: ``widgetsvc/deploy/nginx`` in an installed package (setup.py ships
    the repository's ``deploy/nginx`` template there), else the checkout's ``deploy/nginx``."""
    installed = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "widgetsvc.conf.template"
    return installed if installed.is_file() else REPO_ROOT / "deploy" / "nginx" / installed.name


TEMPLATE = _template()
_UNIX = re.compile(r"^unix:/[A-Za-z0-9._/@+-]+$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class FrontError(RuntimeError):
    """nginx is missing, or a setting cannot be put into its configuration."""


def _upstream(address: str) -> str:
    if _UNIX.match(address):
        return address
    host, sep, port = address.rpartition(":")
    try:
        if not sep:
            raise ValueError
        return listen_address(host, port)
    except (ValueError, SettingError):
        raise FrontError(f"upstream {address!r}: expected unix:/path or host:port") from None


def render(
    upstreams: Sequence[str],
    listen: str,
    runtime_dir: Path | str,
    *,
    limits: FrontSettings | None = None,
    hash_slots: int = 0,
    worker_processes: int | str = "auto",
    worker_connections: int = 4096,
    upstream_timeout: int = 60,
    upstream_keepalive: int = 0,
    drained: Collection[str] = (),
    server_directives: str = "",
    root_location: str = "",
    locations: str = "",
    servers: str = "",
    template: Path = TEMPLATE,
) -> str:
    """The nginx configuration text.

    - ``upstreams``: the instances, ``unix:/path/to/gunicorn.sock`` or ``host:port`` each
      (several = nginx balances between them);
    - ``listen``: where nginx listens, ``host:port`` (see ``listen_address``);
    - ``runtime_dir``: an existing directory the nginx user can write: pid and temp files;
    - ``limits``: the front's limits (``FrontSettings``, the one source of their numbers;
      default: its defaults): nginx's flood ceiling on login + register + password change per
      client address, derived from the application's quota; such requests in flight per
      address; the proxies whose ``X-Forwarded-For`` names the client;
    - ``hash_slots``: the upstreams' hashing slots (HASH_SLOTS) in all: the login gate lets
      that many such requests through at once (unless ``AUTH_IN_FLIGHT`` sets it; 0 = no
      gate), so a flood beyond what can be hashed is answered here and never queues in front
      of other requests;
    - ``upstream_keepalive``: idle connections to the upstreams nginx keeps open (0: none, a
      new one per request: gunicorn's sync workers close theirs; Granian keeps them);
    - ``drained``: upstreams (as given in ``upstreams``) marked ``down``: no new request;
    - ``server_directives``, ``root_location``, ``locations``, ``servers``: nginx text of
      several instances' deployments (``bin/cluster``: retries of reads, the metrics
      listener), at the main server's top, inside its ``location /``, after it, and after
      the last server (each empty by default).
    """
    if not upstreams:
        raise FrontError("at least one upstream is needed")
    numbers = (limits or FrontSettings()).limits(hash_slots)
    auth_rate_limit, auth_burst, quota, auth_conn_limit, auth_in_flight = (
        numbers["auth_rate_limit"], numbers["auth_burst"], numbers["auth_rate_quota"],
        numbers["auth_conn_limit"], numbers["auth_in_flight"])
    runtime = str(runtime_dir)
    if not re.fullmatch(r"/[A-Za-z0-9._/@+-]+", runtime):
        raise FrontError(f"runtime directory {runtime!r}: use a plain absolute path")
    for number in (auth_rate_limit, auth_burst, auth_conn_limit, auth_in_flight,
                   worker_connections, upstream_timeout):
        if int(number) < 0:
            raise FrontError("limits and timeouts must not be negative")
    if str(worker_processes) != "auto" and not str(worker_processes).isdigit():
        raise FrontError("worker_processes: a number or auto")

    real_ip = [f"    set_real_ip_from {network};" for network in
               parse_trusted_proxies(",".join(numbers["trusted_proxies"]))]
    if real_ip:
        real_ip += ["    real_ip_header X-Forwarded-For;", "    real_ip_recursive on;"]
    zones, limits = [], []
    if auth_rate_limit > 0:
        zones += [
            f"    limit_req_zone $binary_remote_addr zone=widgetsvc_auth:10m "
            f"rate={int(auth_rate_limit)}r/m;",
            "    limit_req_status 429;",
            "    limit_req_log_level info;",
        ]
        limits.append(f"            limit_req zone=widgetsvc_auth burst={int(auth_burst)} nodelay;")
    if auth_conn_limit > 0 or auth_in_flight > 0:
        zones += ["    limit_conn_status 503;", "    limit_conn_log_level info;"]
    if auth_conn_limit > 0:
        zones.append("    limit_conn_zone $binary_remote_addr zone=widgetsvc_auth_conn:10m;")
        limits.append(f"            limit_conn widgetsvc_auth_conn {int(auth_conn_limit)};")
    gate = []
    if auth_in_flight > 0:
        zones += ["    map $host $widgetsvc_gate { default all; }  # one key: all clients",
                  "    limit_conn_zone $widgetsvc_gate zone=widgetsvc_auth_all:1m;"]
        gate.append(f"            limit_conn widgetsvc_auth_all {int(auth_in_flight)};")
    # The IETF httpapi draft's rate-limit headers (docs/API.md §8.8) on nginx's own 429: the
    # application's policy, no quota left, and the seconds until nginx passes one more request
    # (one request's share of its minute, as Retry-After). Every answer of the application
    # carries its own (widgetsvc/auth/ratelimit.py).
    retry_after = math.ceil(60 / auth_rate_limit) if auth_rate_limit else 1
    rate_429 = ""
    if auth_rate_limit > 0:
        rate_429 = "\n".join([
            f"""                add_header RateLimit-Policy '"auth";q={quota};w=60' always;""",
            f"""                add_header RateLimit '"auth";r=0;t={retry_after}' always;"""])
    values = {
        "worker_processes": str(worker_processes),
        "worker_connections": str(int(worker_connections)),
        "runtime_dir": runtime,
        "upstream_timeout": str(int(upstream_timeout)),
        "real_ip": "\n".join(real_ip),
        "auth_rate_limit": str(int(auth_rate_limit)),
        "auth_zones": "\n".join(zones),
        "auth_limits": "\n".join(limits),
        "auth_gate_limit": "\n".join(gate),
        "auth_retry_after": str(retry_after),
        "auth_rate_429": rate_429,
        "upstream_servers": "\n".join(
            [f"        server {_upstream(u)}{' down' if u in drained else ''};"
             for u in upstreams]
            + ([f"        keepalive {int(upstream_keepalive)};"]
               if upstream_keepalive > 0 else [])),
        "listen": listen,
        "server_directives": server_directives,
        "root_location": root_location,
        "locations": locations,
        "servers": servers,
    }
    text = template.read_text(encoding="utf-8")
    unknown = set(_PLACEHOLDER.findall(text)) - values.keys()
    if unknown:
        raise FrontError(f"{template}: unknown placeholders {sorted(unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


# -- running it locally (bin/serve) -------------------------------------------------------------

def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def ensure_nginx() -> str:
    """nginx's path; as root, installs Debian's ``nginx`` when missing (like PostgreSQL)."""
    found = find_nginx()
    if found:
        return found
    if os.geteuid() != 0:
        raise FrontError(
            "nginx was not found. Install it (e.g. 'sudo apt-get install nginx'), or serve "
            "without it for debugging: bin/serve --direct (WIDGETSVC_DIRECT=1)."
        )
    apt.install(["nginx"])
    found = find_nginx()
    if not found:
        raise FrontError("apt-get installed nginx but it is still not found")
    return found


def nginx_user(tools: ToolSettings | None = None) -> pwd.struct_passwd | None:
    """As root: the unprivileged user nginx runs as (``WIDGETSVC_NGINX_USER``, else
    ``www-data``, else ``nobody``). Otherwise None: nginx runs as whoever runs bin/serve."""
    tools = tools or ToolSettings.from_env()
    try:
        return plumbing.unprivileged_user("WIDGETSVC_NGINX_USER", tools.nginx_user,
                                          settings.NGINX_USERS)
    except plumbing.NoUser as exc:
        raise FrontError(str(exc)) from None


def make_runtime_dir(var_dir: Path, user: pwd.struct_passwd | None, pid: int,
                     prefix: str = "serve", *, root_owned: bool = False) -> Path:
    """A fresh ``serve-<pid>`` directory for one bin/serve (sockets, pid, temp files), owned by
    nginx's user, mode 0700 (root's gunicorn reaches it anyway): under ``var_dir``, or, when
    nginx's user cannot get there (as root, a clone in a private directory), in the clone's
    relocated directory (``localdb.reachable_dir``: /var/lib/widgetsvc/<digest>/ as root).
    Leftovers of bin/serves that died are removed. When that path is too long for a socket, a
    new directory with an unpredictable name in the temp directory (``mkdtemp``): a name
    another user could guess would let them make it first.

    ``root_owned`` (bin/serve as root): the directory stays root's, mode 0710 for ``user``'s
    group, so that root's gunicorn binds (and chowns) its socket where no other user can swap
    a link in; nginx's own files then go in a ``nginx/`` directory of ``user``'s inside."""
    runtime = localdb.reachable_dir(var_dir / f"{prefix}-{pid}", user)
    if not plumbing.socket_fits(runtime, "nginx/auth-gate.sock"):
        runtime = Path(tempfile.mkdtemp(prefix=f"widgetsvc-{prefix}-{pid}-"))  # 0700, ours
        return _own_runtime(runtime, user, root_owned)
    if runtime.parent.exists():
        for stale in runtime.parent.glob(f"{prefix}-*"):
            other = stale.name[len(prefix) + 1:]
            if other.isdigit() and int(other) != pid and not plumbing.running(int(other)):
                shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(runtime, ignore_errors=True)
    return _own_runtime(runtime, user, root_owned)


def _own_runtime(runtime: Path, user: pwd.struct_passwd | None, root_owned: bool) -> Path:
    if root_owned and user is not None and os.geteuid() == 0:
        try:
            return safefs.make_dir(runtime, None, 0o710, group=user.pw_gid)
        except safefs.UnsafePath as exc:
            raise FrontError(str(exc)) from None
    return localdb.make_dir(runtime, owner=user, mode=0o700)

