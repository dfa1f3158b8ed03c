"""widgetsvc: the Widget API as a small Falcon WSGI service on PostgreSQL."""

__version__ = "0.1.0"
