"""gunicorn settings for widgetsvc; every value can be overridden from the environment."""

import os

wsgi_app = "widgetsvc.wsgi:app"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"

# Sync workers, one per core plus one: the work is short CPU bursts plus PostgreSQL round
# trips on a local socket. (Issue 6 measures the alternatives.)
workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))

# The app (and so each worker's connection pool) is created after the fork, never shared.
preload_app = False

# An 8 KiB Authorization header must reach the app (and get a JSON 401), not gunicorn's 400.
limit_request_field_size = 16384

accesslog = None  # the app writes its own request log
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# gunicorn's control socket defaults to one path per OS user, which two clones (or the tests'
# servers) serving at once would fight over; this service does not use it.
control_socket_disable = True
