"""The WSGI entry point gunicorn loads (in each worker, after the fork)."""

from widgetsvc.app import create_app
from widgetsvc.config import Config
from widgetsvc.logs import configure_logging

config = Config.from_env()
configure_logging(config.log_level)
app = create_app(config)
