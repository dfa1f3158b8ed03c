"""gunicorn's own error answers (a request it cannot parse, before the app sees it) as JSON in
docs/API.md §4's shape instead of its HTML page. Installed by gunicorn.conf.py; matters in direct
mode (``bin/serve --direct``), since behind nginx only complete, valid requests reach gunicorn.

gunicorn has no setting for these answers: its workers call ``gunicorn.util.write_error``, which
is replaced here. That function is not public API, so setup.cfg pins gunicorn's version and
tests/test_gunicorn_errors.py fails if it (or ``write_nonblock``) disappears or changes.
"""

from __future__ import annotations

import json

from gunicorn import util


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Same signature as ``gunicorn.util.write_error``; the details (which may echo the
    client's bytes) stay in gunicorn's log line, not in the answer."""
    body = json.dumps({"message": reason}).encode()
    head = (
        f"HTTP/1.1 {int(status_int)} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


def install() -> None:
    """gunicorn's workers answer their parse errors with ``write_json_error`` from now on."""
    util.write_error = write_json_error
