"""How long a backup and a restore of N widgets take here (README, "Backups and restore"): the
bench seeder fills a private cluster of its own (``var/backup-timing``), then ``bin/backup
--full``, ``bin/backup --incr`` and ``bin/restore --time`` run as an operator would, timed.
Everything it made is deleted at the end.

    .venv/bin/python -m bench.backup_timing --widgets 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time

import psycopg

from bench import seed
from bench.seed import seeded_database
from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.ops import localdb
from widgetsvc.ops.localdb import REPO_ROOT, VAR_DIR, PrivatePostgres


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL)
    return round(time.monotonic() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widgets", type=int, default=1_000_000)
    args = parser.parse_args()
    root = VAR_DIR / "backup-timing"
    repo = localdb.reachable_dir(VAR_DIR / "backup-timing-repo")
    env = {**os.environ, "BACKUP_REPO": str(repo), "BACKUP_RETENTION": "1"}
    env.pop("WIDGETSVC_PG_FSYNC", None)  # the figures are for a durable cluster
    cluster = PrivatePostgres(root).start()
    # Smaller statements than bin/bench's: each must finish within the service's 5 s
    # statement_timeout on a busy machine too.
    seed.CHUNK = 20_000
    bin_dir = REPO_ROOT / "bin"
    where = ["--pgdir", str(root)]
    try:
        started = time.monotonic()
        url, _user = seeded_database(cluster, widgets=args.widgets, email="timing@example.com",
                                     password="Secret-pass-1", bcrypt_rounds=4, admin=False,  # noqa: S106
                                     dbname="widgetsvc")
        seeded = round(time.monotonic() - started, 1)
        first = timed([str(bin_dir / "backup"), *where, "--full"], env)  # + archiving on
        full = timed([str(bin_dir / "backup"), *where, "--full"], env)
        incr = timed([str(bin_dir / "backup"), *where, "--incr"], env)
        with psycopg.connect(url, autocommit=True) as conn:
            moment = conn.execute(load_queries(SQL_DIR / "testing")["backup_now"]).fetchone()[0]
        restore = timed([str(bin_dir / "restore"), *where, "--time", moment], env)
        cluster.stop()  # the data directory lost: every file copied back, then all WAL
        shutil.rmtree(cluster.data_dir)
        lost = timed([str(bin_dir / "restore"), *where, "--latest"], env)
        with psycopg.connect(url, autocommit=True) as conn:
            count = len(conn.execute(
                load_queries(SQL_DIR / "testing")["backup_widget_names"]).fetchall())
        size = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
        print(json.dumps({"widgets": count, "seed_s": seeded,
                          "first_full_backup_s_with_archiving_setup": first,
                          "full_backup_s": full, "incr_backup_s": incr,
                          "restore_to_time_s": restore,
                          "restore_latest_into_empty_dir_s": lost,
                          "repo_mb": round(size / 2**20, 1)}))
    finally:
        cluster.destroy()
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
