"""What every API resource is built with: the database, the configuration, the validator and
the clock (``create_app`` passes the same four to each)."""

from __future__ import annotations

from widgetsvc import timefmt
from widgetsvc.config import Config
from widgetsvc.db import Database
from widgetsvc.validation import Validator


class Resource:
    def __init__(self, db: Database, config: Config, validator: Validator,
                 clock: timefmt.Clock):
        self.db = db
        self.config = config
        self.validator = validator
        self.clock = clock
