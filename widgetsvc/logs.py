"""Logging set-up: records on stderr (where gunicorn's own logs go); the request log is bare
JSON lines."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_widgetsvc", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._widgetsvc = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)

    access = logging.getLogger("widgetsvc.access")
    access_handler = logging.StreamHandler(sys.stderr)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(access_handler)
    access.propagate = False
