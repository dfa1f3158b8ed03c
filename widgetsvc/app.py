"""The application factory: middleware, routes and error handlers, nothing else."""

from __future__ import annotations

from pathlib import Path

import falcon

from widgetsvc import API_PREFIX, errors, jsonio, metrics, timefmt
from widgetsvc.auth import keys, ratelimit
from widgetsvc.auth.hashslots import HashSlots
from widgetsvc.auth.loginlock import front_networks
from widgetsvc.auth.middleware import AuthMiddleware, check_declarations
from widgetsvc.auth.passwords import dummy_hash
from widgetsvc.auth.resources import (
    JWKSResource,
    LoginResource,
    LogoutAllResource,
    LogoutResource,
    PasswordResource,
    RefreshResource,
    RegisterResource,
    UserResource,
)
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
from widgetsvc.users.resources import UserCollection, UserItem
from widgetsvc.validation import Validator
from widgetsvc.widgets.resources import WidgetCollection, WidgetItem, WidgetNameConverter


def create_app(
    config: Config, db: Database | None = None, clock: timefmt.Clock | None = None
) -> falcon.App:
    """Build the WSGI app. Call it after gunicorn forks: it opens this process's pool."""
    clock = clock or timefmt.Clock()
    keyring = keys.for_config(config)  # a bad key file stops the start here
    if db is None:
        db = Database(
            config.database_url,
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            timeout=config.pool_timeout,
            statement_timeout_ms=config.statement_timeout_ms,
            pgbouncer=config.pgbouncer,
        )
        db.open()
    validator = Validator(clock)
    dummy_hash(config.bcrypt_rounds)  # computed now, not during the first login

    # Metrics (METRICS_PORT not 0): first in, last out, so a request's time covers the rest.
    recording = metrics.enabled()
    if recording and metrics.multiprocess_dir():  # under gunicorn (not a test's app)
        metrics.watch_pool(db.pool)
    shared = (db, config, validator, clock)
    # One set of hashing slots for every resource that hashes a password (docs/API.md §8.1).
    slots = HashSlots(config.hash_slots, Path(config.runtime_dir) if config.runtime_dir else None)
    register = RegisterResource(*shared, slots=slots)
    login = LoginResource(*shared, slots=slots)
    password = PasswordResource(*shared, slots=slots)
    # The per-address rate limit (docs/API.md §8.8); register's unit is taken before its body.
    rate_limit = ratelimit.RateLimitMiddleware(
        db, ratelimit.AuthRateLimit(config.auth_rate_limit),
        front_networks(config.forwarded_allow_ips),
        {register: "POST", login: "POST", password: "PUT"}, frozenset({id(register)}))
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
            rate_limit,
            AuthMiddleware(
                db, keys=keyring, leeway=config.token_leeway,
                user_realm=config.user_realm, admin_realm=config.admin_realm,
            ),
        ],
    )
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = jsonio.handler()
    errors.install(app)

    app.router_options.converters["widget_name"] = WidgetNameConverter

    routes: dict[str, object] = {
        "/auth/register": register,
        "/auth/login": login,
        "/auth/user": UserResource(*shared),
        "/auth/logout": LogoutResource(*shared),
        "/auth/refresh": RefreshResource(*shared),
        "/auth/logout-all": LogoutAllResource(*shared),
        "/auth/password": password,
        "/auth/jwks.json": JWKSResource(keyring),
        "/users": UserCollection(*shared),
        "/users/{public_id}": UserItem(*shared),
        "/widgets": WidgetCollection(*shared),
        "/widgets/{name:widget_name}": WidgetItem(*shared),
        "/ui": SwaggerUIResource(),
        "/health": HealthResource(db),
    }
    routes["/openapi.json"] = OpenAPIResource(routes, config.public_url)  # every route, itself too
    for path, resource in routes.items():
        if hasattr(resource, "on_get") and not hasattr(resource, "on_head"):
            resource.on_head = resource.on_get  # HEAD wherever GET (Falcon drops the body)
        check_declarations(resource)
        app.add_route(f"{API_PREFIX}{path}", resource)
    app.add_static_route(f"{API_PREFIX}/ui/assets", str(ASSETS_DIR))
    return app
