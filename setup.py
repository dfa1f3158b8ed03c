"""Packaging shim: the metadata lives in setup.cfg; here only what it cannot say.

The SQL stays the top-level ``sql/`` folder of the repository (DBAs and reviewers read it there)
and is shipped inside the package as ``widgetsvc/sql``, where an installed ``widgetsvc.db``
finds its queries and migrations. Only what the service runs ships: not ``sql/testing`` nor
``sql/bench``. Likewise the nginx template (``deploy/nginx``, shipped as
``widgetsvc/deploy/nginx``), so that an installed ``widgetsvc.ops.front.render()`` works; the
cluster's templates serve ``bin/cluster`` in a checkout and stay out.
"""

from setuptools import find_namespace_packages, setup

SQL_PACKAGES = {
    "widgetsvc.sql": ["*.sql", "*.psql"],
    "widgetsvc.sql.queries": ["*.sql"],
    "widgetsvc.sql.migrations": ["*.sql"],
}
DEPLOY_PACKAGES = {
    "widgetsvc.deploy": [],
    "widgetsvc.deploy.nginx": ["widgetsvc.conf.template"],
}

setup(
    packages=(find_namespace_packages(include=["widgetsvc", "widgetsvc.*"])
              + list(SQL_PACKAGES) + list(DEPLOY_PACKAGES)),
    package_dir={"widgetsvc.sql": "sql", "widgetsvc.deploy": "deploy"},
    package_data={"widgetsvc": ["schemas/*.json", "docs/*.json", "docs/*.html"],
                  **SQL_PACKAGES, **DEPLOY_PACKAGES},
)
