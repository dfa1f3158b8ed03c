"""``bin/cluster up|down|status|env|upgrade``: the command line over the cluster's modules."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping

from widgetsvc import setting_errors
from widgetsvc.config import ConfigError
from widgetsvc.ops import cmdline, settings
from widgetsvc.ops.cluster.hacluster import HACluster, Options
from widgetsvc.ops.cluster.packages import MissingPackages
from widgetsvc.ops.cluster.state import ClusterError
from widgetsvc.ops.cluster.upgrade import rolling_upgrade
from widgetsvc.ops.front import FrontError
from widgetsvc.ops.safefs import UnsafePath
from widgetsvc.ops.settings import ToolSettings


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = cmdline.Parser(
        "bin/cluster",
        "The production-shaped topology on this machine: etcd, PostgreSQL x 2 under Patroni, "
        "HAProxy, PgBouncer, N instances and nginx, watched by Prometheus (README: Running a "
        "cluster; docs/operations.md).",
        environment=[("WIDGETSVC_CLUSTER_DIR", "its directory (var/cluster; --dir wins)"),
                     ("PGBOUNCER_POOL_SIZE", "PgBouncer's server connections "
                                             f"({settings.DEFAULT_PGBOUNCER_POOL_SIZE})"),
                     ("WIDGETSVC_PG_OS_USER", "as root: the user that runs its parts"),
                     ("SECRET_KEY, ...", "the service's settings reach every instance")],
        exit_codes=[(0, "done (status: running)"), (1, "failed: one line says why"),
                    (3, "status: not running or no cluster")])
    parser.add_argument("--dir", help="the cluster's directory (default: var/cluster, or "
                                      "WIDGETSVC_CLUSTER_DIR)")
    sub = parser.add_commands()
    up = sub.add_parser("up", help="start (first time: create) every part; idempotent")
    up.add_argument("--instances", type=int, default=2, help="widgetsvc instances (default 2)")
    up.add_argument("--no-pgbouncer", action="store_true",
                    help="instances connect to HAProxy directly")
    down = sub.add_parser("down", help="stop every process the cluster started")
    down.add_argument("--purge", action="store_true", help="also delete its data")
    status = sub.add_parser("status", help="what runs where; Patroni's roles")
    status.add_argument("--json", action="store_true")
    sub.add_parser("env", help="print export lines for bin/migrate, bin/add-user, psql")
    sub.add_parser("upgrade", help="migrate, then replace the instances one at a time behind "
                                   "the front (no request fails), then reload the front")
    args = parser.parse_args(argv)

    from pathlib import Path

    try:
        check_cluster_settings(os.environ, up=args.command in ("up", "upgrade"))
    except (setting_errors.SettingError, ConfigError, FrontError) as exc:
        _log(f"widgetsvc: {exc}")
        return 1
    cluster = HACluster(Path(args.dir).resolve() if args.dir else None)
    try:
        if args.command == "up":
            if args.instances < 1:
                parser.error("--instances must be at least 1")
            cluster.up(Options(instances=args.instances, pgbouncer=not args.no_pgbouncer),
                       log=_log)
            print(cluster.front_url)
        elif args.command == "down":
            cluster.down(purge=args.purge, log=_log)
        elif args.command == "status":
            return _status(cluster, as_json=args.json)
        elif args.command == "upgrade":
            rolling_upgrade(cluster, log=_log)
            print(cluster.front_url)
        elif args.command == "env":
            if not cluster.exists:
                _log("cluster: no cluster here; run bin/cluster up first")
                return 1
            print(f"export DATABASE_URL={shlex.quote(cluster.leader_url())}")
            print(f"export SECRET_KEY={shlex.quote(cluster.state['secrets']['secret_key'])}")
            print(f"export WIDGETSVC_URL={shlex.quote(cluster.front_url)}")
    except (ClusterError, MissingPackages, RuntimeError, UnsafePath) as exc:
        _log(f"cluster: {exc}")
        return 1
    return 0


def check_cluster_settings(env: Mapping[str, str], *, up: bool) -> None:
    """bin/cluster's own settings, and for ``up`` the service's (they reach every instance),
    refused in one line before any part starts."""
    from widgetsvc import config

    ToolSettings.from_env(env)
    if up:
        stand_ins = {"DATABASE_URL": "postgresql:///cluster", "SECRET_KEY": "k" * 48}
        service = {**env, **{k: v for k, v in stand_ins.items() if not env.get(k)}}
        config.Config.from_env(service)


def _status(cluster: HACluster, *, as_json: bool) -> int:
    info = cluster.status()
    if as_json:
        print(json.dumps(info, indent=2))
        return 0 if info.get("running") else 3
    if not cluster.exists:
        print(f"no cluster in {cluster.root}")
        return 3
    print(f"front      {info['front']}  ({'running' if info['running'] else 'stopped'})")
    for index, instance in enumerate(info["instances"], 1):
        print(f"instance {index} {instance['url']}  pid {instance['pid'] or '-'}")
    for node in info["postgres"]:
        print(f"{node['name']:<10} port {node['port']}  {node['role'] or '?':<12} "
              f"{node['state'] or '-':<10} postmaster {node['postmaster_pid'] or '-'}  "
              f"timeline {node['timeline'] or '-'}")
    for part in ("haproxy", "pgbouncer", "etcd"):
        if info.get(part):
            print(f"{part:<10} {info[part]['url']}  pid {info[part]['pid'] or '-'}")
    if info.get("prometheus"):
        print(f"prometheus {info['prometheus']}")
    return 0 if info["running"] else 3


if __name__ == "__main__":
    raise SystemExit(main())
