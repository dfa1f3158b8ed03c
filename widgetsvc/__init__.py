"""widgetsvc: the Widget API as a small Falcon WSGI service on PostgreSQL."""

__version__ = "0.1.0"

# Where the API lives: every route, link and documented path starts with it.
API_PREFIX = "/api/v1"
