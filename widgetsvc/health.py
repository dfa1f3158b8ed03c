"""``GET /api/v1/health``: is the service up, and can it reach PostgreSQL right now."""

from __future__ import annotations

import falcon
import psycopg
import psycopg_pool

from widgetsvc.auth.middleware import NONE
from widgetsvc.db import Database
from widgetsvc.errors import RETRY_AFTER_SECONDS


class HealthResource:
    auth = {"GET": NONE}

    def __init__(self, db: Database, timeout: float = 1.0):
        self.db = db
        self.timeout = timeout

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("Cache-Control", "no-store")
        try:
            self.db.ping(self.timeout)
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
            resp.media = {"status": "unavailable", "database": "unreachable"}
            return
        resp.media = {"status": "ok", "database": "ok"}
