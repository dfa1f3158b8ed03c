"""The tools that run the service, apart from the service itself.

Nothing here runs inside gunicorn's workers: the private PostgreSQL (``localdb``), the nginx
front (``front``), ``bin/serve``'s supervisor and servers, the cluster, backups, migrations,
the apt installer and the command line. The service core (``widgetsvc`` outside this package)
never imports from here; ``tests/test_structure.py`` holds that direction.
"""
