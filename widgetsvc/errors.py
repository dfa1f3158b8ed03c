"""Every error the API answers with, and the one place they are rendered as JSON."""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon
import psycopg
import psycopg_pool

log = logging.getLogger("widgetsvc.errors")

RETRY_AFTER_SECONDS = 5


class APIError(falcon.HTTPError):
    """An HTTP error whose JSON body is exactly ``body``."""

    def __init__(self, status: str, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status, headers=headers)
        self.body = body


def fail(status: str, message: str, headers: dict[str, str] | None = None) -> APIError:
    """The tutorial's ``{"status": "fail", "message": ...}`` shape."""
    return APIError(status, {"status": "fail", "message": message}, headers)


def validation_failed(errors: dict[str, str]) -> APIError:
    return APIError(
        falcon.HTTP_400, {"message": "Input payload validation failed", "errors": errors}
    )


def _challenge(realm: str, error: str | None = None, description: str | None = None) -> str:
    value = f'Bearer realm="{realm}"'
    if error:
        value += f', error="{error}", error_description="{description}"'
    return value


def unauthorized(realm: str) -> APIError:
    """No credentials at all."""
    return APIError(
        falcon.HTTP_401, {"message": "Unauthorized"}, {"WWW-Authenticate": _challenge(realm)}
    )


def invalid_token(realm: str, message: str) -> APIError:
    return APIError(
        falcon.HTTP_401,
        {"message": message},
        {"WWW-Authenticate": _challenge(realm, "invalid_token", message)},
    )


def not_admin(realm: str) -> APIError:
    message = "You are not an administrator"
    return APIError(
        falcon.HTTP_403,
        {"message": message},
        {"WWW-Authenticate": _challenge(realm, "insufficient_scope", message)},
    )


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Always JSON, whatever the client's Accept header says."""
    if isinstance(exc, APIError):
        body = exc.body
    else:
        # Falcon's own errors (404 route, 405, ...): the reason phrase, or its description.
        body = {"message": exc.description or falcon.code_to_http_status(exc.status_code)[4:]}
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)


def handle_database_down(req, resp, exc, params) -> None:
    """PostgreSQL unreachable or too slow: a clear 503 the client may retry."""
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    raise APIError(
        falcon.HTTP_503,
        {"message": "Service Unavailable: the database is unreachable, retry later."},
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def handle_unexpected(req, resp, exc, params) -> None:
    """A bug: the traceback goes to the log, never to the client."""
    log.error("unhandled %s on %s %s", type(exc).__name__, req.method, req.path, exc_info=exc)
    raise APIError(falcon.HTTP_500, {"message": "Internal Server Error"})


def install(app: falcon.App) -> None:
    """Register the handlers; Falcon picks the most specific one for each exception."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(
        (psycopg.OperationalError, psycopg_pool.PoolTimeout),
        handle_database_down,
    )
