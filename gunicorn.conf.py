"""gunicorn settings for widgetsvc, from the environment: the serving settings as the tools
parse them (``ToolSettings``, widgetsvc/ops/settings.py), the service's own through the functions
its ``Config`` parses them with (widgetsvc/config.py). No default is written here."""

import os
import sys

# gunicorn runs this file again on a reload (SIGHUP, README "Upgrades"): the service's modules
# its master imported before (this file's, and as root the preloaded app) are forgotten first,
# so that the new workers run the code on disk now, not the release the master started with.
for _name in [n for n in sys.modules if n == "widgetsvc" or n.startswith("widgetsvc.")]:
    del sys.modules[_name]

from widgetsvc import config as _config  # noqa: E402
from widgetsvc.ops.settings import ToolSettings  # noqa: E402
from widgetsvc.setting_errors import SettingError  # noqa: E402

# A bad setting is one line (README, "Command line"), not a traceback, even without bin/serve.
try:
    _tools = ToolSettings.from_env()
    _forwarded = _config.forwarded_allow_ips(os.environ)
    _metrics_port = _config.metrics_port(os.environ)
    _config.runtime_dir(os.environ)
except (SettingError, _config.ConfigError) as exc:
    raise SystemExit(f"widgetsvc: {exc}") from None

wsgi_app = "widgetsvc.wsgi:app"
# bin/serve puts nginx on HOST:PORT and gunicorn on a Unix socket behind it (README, "Serving
# behind nginx"); with --direct (WIDGETSVC_DIRECT=1) gunicorn itself listens on HOST:PORT.
bind = f"unix:{_tools.gunicorn_socket}" if _tools.gunicorn_socket else _tools.listen
# X-Forwarded-* are honoured only from the front proxy: gunicorn trusts every Unix-socket peer
# (nginx, on a socket in a directory only nginx's user and this one reach) and, with an empty
# FORWARDED_ALLOW_IPS (the default), no TCP peer at all (so not a direct-mode client either).
# bin/cluster's nginx reaches its instances over TCP: it sets its own address there. The app
# reads the same variable for the client address of its failed-login lock.
forwarded_allow_ips = ",".join(_forwarded)

# Sync workers, one per core plus one: on 2 cores that count read fastest and kept reads well
# under 100 ms while bcrypt held two workers (docs/benchmarks.md, "gunicorn's worker count").
# Sync workers close each connection (no keep-alive); keep-alive (gthread) did not pay for
# the threads' overhead here.
workers = _tools.workers
worker_class = _tools.worker_class
threads = _tools.threads
timeout = _tools.timeout
graceful_timeout = _tools.graceful_timeout
keepalive = _tools.keepalive

# The app (and so each worker's connection pool) is created after the fork, never shared.
preload_app = False

# Metrics (widgetsvc/metrics.py, docs/operations.md): the workers write their values to files
# in a directory of their own, the master adds them up on 127.0.0.1:METRICS_PORT (0: off). The
# directory is named before anything imports prometheus_client (the app, below, as root).
from widgetsvc.ops import metrics_listener as _metrics  # noqa: E402

if _metrics_port:
    _workers_ids = None
    if os.geteuid() == 0:
        from widgetsvc.ops.servers import app_user as _app_user

        _ids = _app_user(_tools)
        _workers_ids = (_ids.pw_uid, _ids.pw_gid)
    # Written into os.environ (the only such write): prometheus_client reads it only there.
    _metrics.prepare_multiprocess_dir(os.environ, _workers_ids)


def on_starting(server):
    """The metrics listener, in the master, before gunicorn binds its own socket: a busy
    METRICS_PORT stops the start before anything (bin/serve's nginx) sees the app listening."""
    if _metrics_port:
        try:
            _metrics.serve(_metrics_port)
        except OSError as exc:
            raise SystemExit(f"widgetsvc: METRICS_PORT={_metrics_port}: cannot listen on "
                             f"127.0.0.1:{_metrics_port}: {exc.strerror} (a free port, or 0 "
                             "for no metrics)") from None


def child_exit(server, worker):
    """A dead worker's live gauges (pool, hashing slots) stop counting."""
    if _metrics_port:
        _metrics.worker_exited(worker.pid)


def on_exit(server):
    _metrics.remove_multiprocess_dir(os.environ)


# As root (bin/serve, bin/cluster's instances), the application itself does not run as root:
# the master binds the socket, the workers (which import and run the app) become the
# unprivileged WIDGETSVC_APP_USER (default: the private clusters' owner, who reaches their
# sockets), without root's supplementary groups. README, "Serving behind nginx".
if os.geteuid() == 0:
    from widgetsvc.ops.servers import app_user

    _app = app_user(_tools)
    user, group = _app.pw_uid, _app.pw_gid
    # The code (not its state: each worker still creates its app, pool and hashing slots after
    # the fork) is loaded here, as root, so that the workers need not read the interpreter's
    # own files, which that user may not reach (a Python installed under /root): the app's
    # modules, and every codec (the standard library loads those on first use: "idna").
    from widgetsvc.ops.supervisor import preload_code

    preload_code()

    def post_fork(server, worker):  # in the worker, just before it drops to ``user``
        os.setgroups([])

# gunicorn's own error answers (unparseable requests) are JSON like the app's.
from widgetsvc.ops import gunicorn_errors  # noqa: E402

gunicorn_errors.install()

# An 8 KiB Authorization header must reach the app (and get a JSON 401), not gunicorn's 400.
limit_request_field_size = 16384

accesslog = None  # the app writes its own request log
errorlog = "-"
loglevel = _tools.log_level

# gunicorn's control socket defaults to one path per OS user, which two clones (or the tests'
# servers) serving at once would fight over; this service does not use it.
control_socket_disable = True
