"""The metrics listener in gunicorn's master (on ``METRICS_PORT``, which gunicorn.conf.py takes
from widgetsvc.config) and the workers' multiprocess directory it adds up.

Kept apart from :mod:`widgetsvc.metrics`: gunicorn.conf.py imports this before
``PROMETHEUS_MULTIPROC_DIR`` is set, and ``prometheus_client`` picks its multiprocess mode when
first imported, so nothing here imports it at the top.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, MutableMapping

from widgetsvc.config import METRICS_MULTIPROC_ENV

# Set next to it when gunicorn.conf.py made the directory (and so removes it at exit): the
# configuration file runs again on a reload (SIGHUP), which must neither make a second one nor
# forget the first.
MADE_ENV = "WIDGETSVC_METRICS_DIR_MADE"


def prepare_multiprocess_dir(env: MutableMapping[str, str], owner: tuple[int, int] | None) -> None:
    """In gunicorn's master, before the app is imported: point ``PROMETHEUS_MULTIPROC_DIR`` at
    a fresh directory the workers (``owner``: their uid and gid, as root) can write, unless it
    names one already (the operator's, to be emptied before each start, or ours on a reload)."""
    if env.get(METRICS_MULTIPROC_ENV):
        return
    # In the system's temporary directory: root makes it where no other user can swap it.
    path = tempfile.mkdtemp(prefix="widgetsvc-metrics-")
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)
    # The one write into os.environ: prometheus_client reads its directory only from there, in
    # the workers, which inherit it (and a reload must find the directory made before).
    env[METRICS_MULTIPROC_ENV] = path
    env[MADE_ENV] = path


def remove_multiprocess_dir(env: Mapping[str, str]) -> None:
    """At gunicorn's exit: the directory, if gunicorn.conf.py made it."""
    path = env.get(METRICS_MULTIPROC_ENV)
    if path and env.get(MADE_ENV) == path:
        shutil.rmtree(path, ignore_errors=True)


def serve(metrics_port: int) -> None:
    """The master's listener: every worker's values added up, and the master's own process
    metrics (``process_*``) under the standard names."""
    from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    ProcessCollector(registry=registry)
    start_http_server(metrics_port, addr="127.0.0.1", registry=registry)


def worker_exited(pid: int) -> None:
    """gunicorn's ``child_exit``: that worker's live gauges stop counting."""
    from prometheus_client import multiprocess

    if os.environ.get(METRICS_MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
