"""gunicorn settings for widgetsvc; every value can be overridden from the environment."""

import os
import sys

# gunicorn runs this file again on a reload (SIGHUP, README "Upgrades"): the service's modules
# its master imported before (this file's, and as root the preloaded app) are forgotten first,
# so that the new workers run the code on disk now, not the release the master started with.
for _name in [n for n in sys.modules if n == "widgetsvc" or n.startswith("widgetsvc.")]:
    del sys.modules[_name]

from widgetsvc.config import ConfigError, check_gunicorn, metrics_port, web_concurrency  # noqa: E402

# A bad setting is one line (README, "Command line"), not a traceback, even without bin/serve.
try:
    check_gunicorn(os.environ)
except ConfigError as exc:
    raise SystemExit(f"widgetsvc: {exc}") from None

wsgi_app = "widgetsvc.wsgi:app"
# bin/serve puts nginx on HOST:PORT and gunicorn on a Unix socket behind it (README, "Serving
# behind nginx"); with --direct (WIDGETSVC_DIRECT=1) gunicorn itself listens on HOST:PORT.
_front_socket = os.environ.get("WIDGETSVC_GUNICORN_SOCKET")
bind = (f"unix:{_front_socket}" if _front_socket
        else f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}")
# X-Forwarded-* are honoured only from the front proxy: gunicorn trusts every Unix-socket peer
# (nginx, on a socket in a directory only nginx's user and this one reach) and, with an empty
# FORWARDED_ALLOW_IPS (the default), no TCP peer at all (so not a direct-mode client either).
# bin/cluster's nginx reaches its instances over TCP: it sets its own address there. The app
# reads the same variable for the client address of its failed-login lock.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")

# Sync workers, one per core plus one: on 2 cores that count read fastest and kept reads well
# under 100 ms while bcrypt held two workers (docs/benchmarks.md, "gunicorn's worker count").
# Sync workers close each connection (no keep-alive); keep-alive (gthread) did not pay for
# the threads' overhead here.
workers = web_concurrency(os.environ)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))

# The app (and so each worker's connection pool) is created after the fork, never shared.
preload_app = False

# Metrics (widgetsvc/metrics.py, docs/operations.md): the workers write their values to files
# in a directory of their own, the master adds them up on 127.0.0.1:METRICS_PORT (0: off). The
# directory is named before anything imports prometheus_client (the app, below, as root).
from widgetsvc.ops import metrics_listener as _metrics  # noqa: E402

_metrics_port = metrics_port(os.environ)
if _metrics_port:
    _workers_ids = None
    if os.geteuid() == 0:
        from widgetsvc.ops.front import app_user as _app_user

        _ids = _app_user()
        _workers_ids = (_ids.pw_uid, _ids.pw_gid)
    _metrics.prepare_multiprocess_dir(os.environ, _workers_ids)


def when_ready(server):
    """The metrics listener, in the master, once gunicorn listens."""
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
    from widgetsvc.ops.front import app_user

    _app = app_user()
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
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# gunicorn's control socket defaults to one path per OS user, which two clones (or the tests'
# servers) serving at once would fight over; this service does not use it.
control_socket_disable = True
