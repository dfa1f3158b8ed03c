"""Logging set-up: records on stderr (where gunicorn's own logs go). The request log is not a
logging record: widgetsvc/requestlog.py writes its JSON lines to stderr itself."""

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

