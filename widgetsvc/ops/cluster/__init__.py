"""``bin/cluster``: the production-shaped topology on one machine (see README "Running a cluster").

etcd -> 2 x PostgreSQL under Patroni -> HAProxy (to the leader) -> PgBouncer -> N widgetsvc
instances -> nginx. Each part is its own process on loopback ports; the configuration comes
from the templates in ``deploy/``.
"""
