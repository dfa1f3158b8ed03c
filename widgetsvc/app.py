"""The application factory: the domains (each built from the configuration once), the
middleware, the routes and the error handlers, nothing else."""

from __future__ import annotations

import falcon

from widgetsvc import API_PREFIX, errors, jsonio, metrics, timefmt
from widgetsvc.auth import ratelimit
from widgetsvc.auth import resources as auth
from widgetsvc.auth.caller import Callers
from widgetsvc.auth.middleware import check_declarations
from widgetsvc.config import Config
from widgetsvc.db import Database
from widgetsvc.docs.resources import (
    ASSETS_DIR,
    UI_SCRIPT_HASHES,
    OpenAPIResource,
    SwaggerUIResource,
)
from widgetsvc.health import HealthResource
from widgetsvc.hygiene import HygieneMiddleware
from widgetsvc.requestlog import RequestLogMiddleware
from widgetsvc.resource import Shared
from widgetsvc.users import resources as users
from widgetsvc.validation import Validator
from widgetsvc.widgets import resources as widgets


def create_app(
    config: Config, db: Database | None = None, clock: timefmt.Clock | None = None
) -> falcon.App:
    """Build the WSGI app. Call it after gunicorn forks: it opens this process's pool."""
    clock = clock or timefmt.Clock()
    opening = db is None
    if db is None:
        db = Database(
            config.database_url,
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            timeout=config.pool_timeout,
            statement_timeout_ms=config.statement_timeout_ms,
            pgbouncer=config.pgbouncer,
        )
    shared = Shared(config, Validator(clock), clock, Callers(db))
    authn = auth.build(db, shared)  # a bad key file stops the start here
    routes: dict[str, object] = {
        **authn.routes,
        **users.build(db, shared),
        **widgets.build(db, shared),
        "/ui": SwaggerUIResource(),
        "/health": HealthResource(db),
    }
    routes["/openapi.json"] = OpenAPIResource(routes, config.public_url)  # every route, itself too
    if opening:
        db.open()

    # Metrics (METRICS_PORT not 0): first in, last out, so a request's time covers the rest.
    recording = config.metrics_port != 0
    if recording and metrics.multiprocess_dir():  # under gunicorn (not a test's app)
        metrics.watch_pool(db.pool)
    app = falcon.App(
        middleware=[
            *([metrics.MetricsMiddleware()] if recording else []),
            HygieneMiddleware(config.allowed_hosts, config.public_url, UI_SCRIPT_HASHES),
            RequestLogMiddleware(enabled=config.log_level in ("DEBUG", "INFO")),
            falcon.CORSMiddleware(
                allow_origins="*",
                expose_headers=["Link", "Location", "Total-Count", "WWW-Authenticate", "ETag",
                                "Retry-After", ratelimit.POLICY, ratelimit.REMAINING],
            ),
            authn.rate_limit,
            authn.middleware,
        ],
    )
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = jsonio.handler()
    errors.install(app)

    app.router_options.converters["widget_name"] = widgets.WidgetNameConverter
    for path, resource in routes.items():
        if hasattr(resource, "on_get") and not hasattr(resource, "on_head"):
            resource.on_head = resource.on_get  # HEAD wherever GET (Falcon drops the body)
        check_declarations(resource)
        app.add_route(f"{API_PREFIX}{path}", resource)
    app.add_static_route(f"{API_PREFIX}/ui/assets", str(ASSETS_DIR))
    return app
