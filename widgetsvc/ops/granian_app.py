"""The target each Granian worker loads: as root, it becomes the app user first (issue 25).

gunicorn's workers drop to the unprivileged app user (gunicorn.conf.py); Granian has no such
setting, so its workers do it here, the equivalent of gunicorn's ``user``/``group`` and its
post_fork hook: the code is imported while still root (the app user may not read a Python
installed under /root), then supplementary groups, group and user are given up, and only then is
the app created (its connection pool, its hashing slots). Without root nothing changes.
"""

from __future__ import annotations

import importlib
import os

from widgetsvc.ops.settings import DEFAULT_GRANIAN_APP, ToolSettings


def _drop_privileges() -> None:
    from widgetsvc.ops.servers import app_user
    from widgetsvc.ops.supervisor import preload_code

    preload_code()
    user = app_user()
    if user is None:  # not root after all
        return
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    if os.geteuid() == 0 or os.getuid() == 0:
        raise SystemExit("widgetsvc: the Granian worker could not give up root")


def _load(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name or "app")


if os.geteuid() == 0:
    _drop_privileges()
app = _load(ToolSettings.from_env().granian_app or DEFAULT_GRANIAN_APP)
