"""One look at the database before a command starts: reachable, or one line naming the host,
the port and the cause (a one-shot command otherwise waits for its pool's timeout and says
only "pool initialization incomplete")."""

from __future__ import annotations

import math

import psycopg
from psycopg.conninfo import conninfo_to_dict

from widgetsvc import setting_errors

ALLOWED = "a libpq URL of a reachable PostgreSQL, e.g. postgresql://user@host:5432/dbname"


def where(url: str) -> str:
    """``host H port P`` (or the Unix socket) the URL names, for messages."""
    params = conninfo_to_dict(url)
    host = str(params.get("host") or "the default Unix socket")
    port = str(params.get("port") or "5432")
    if host.startswith("/"):
        return f"Unix socket {host}/.s.PGSQL.{port}"
    return f"host {host} port {port}"


def check_url(url: str, name: str = "DATABASE_URL") -> None:
    """A URL libpq cannot even parse is a bad setting."""
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        cause = str(exc).splitlines()[0].removeprefix("invalid connection option ")
        raise setting_errors.bad_setting(name, url, f"not a connection string: {cause}",
                                         ALLOWED) from None


def probe(url: str, timeout: float = 3.0, name: str = "DATABASE_URL") -> None:
    """Open and close one session within ``timeout`` seconds (libpq rounds up to at least 2),
    or raise SettingError naming host, port and the cause."""
    check_url(url, name)
    try:
        with psycopg.connect(url, connect_timeout=max(2, math.ceil(timeout))):
            pass
    except psycopg.OperationalError as exc:
        raise setting_errors.bad_setting(name, url, f"cannot connect to {where(url)}: {cause(exc)}",
                                         ALLOWED) from None


def cause(exc: BaseException) -> str:
    """libpq's reason, without its preamble ("connection to server at ... failed:")."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for preamble in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(preamble)
    if text.startswith("connection to server") and "failed: " in text:
        text = text.split("failed: ", 1)[1]
    return text or type(exc).__name__
