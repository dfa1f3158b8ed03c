"""The write floor (bin/bench's ``write-floor`` and ``create-floor``): the very statements
``update`` and ``create`` run, run by pgbench against the same database, at the concurrency
the service can have (gunicorn workers x each worker's pool), with synchronous_commit on (the
database's default, as the service has it) and the service's session settings.

pgbench's custom script is made from the named query itself (sql/queries), its ``%(name)s``
parameters replaced by pgbench variables or by the values a request passes (the bench
token's subject, token id and session id): the same plan, the same caller check, the same
commit per statement; only HTTP, Python and the pool are missing. pgbench runs its scripts
with prepared statements (``-M prepared``), as psycopg does once a statement repeats.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from widgetsvc import config
from widgetsvc.db import load_queries

# The service's session settings (widgetsvc/db.py), for pgbench's connections too.
SESSION_OPTIONS = ("-c TimeZone=UTC -c jit=off -c plan_cache_mode=force_generic_plan "
                   "-c statement_timeout=5000")


def concurrency(env: dict[str, str]) -> int:
    """Workers x pool: as many statements as the service can have in flight (with the
    service's own defaults for both)."""
    pool = config.whole(env, "DB_POOL_MAX", config.Config.pool_max_size)
    return config.web_concurrency(env) * pool


def token_claims(token: str) -> dict[str, str]:
    """The bench token's subject, id and session (what the caller check looks up)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {"subject": claims["sub"], "token_id": claims["jti"], "session_id": claims["sid"]}


def _literal(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9:/._{}-]*", value):
        raise ValueError(f"not a plain value: {value!r}")
    return f"'{value}'"


def script(query: str, values: dict[str, str]) -> str:
    """``query`` (a named query's text) as a pgbench command: each ``%(name)s`` replaced by
    ``values[name]`` (SQL text: a pgbench variable expression or a literal), on one line."""
    lines = [line for line in query.splitlines() if not line.strip().startswith("--")]
    text = " ".join(" ".join(lines).split())
    return re.sub(r"%\((\w+)\)s", lambda m: values[m.group(1)], text) + ";\n"


def scripts(token: str, widgets: int, run: str) -> dict[str, str]:
    """The floor scripts: ``update`` (upsert_widget on an existing widget, as bench/update.lua
    sends it) and ``create`` (insert_widget then delete_widget of that new name, as
    bench/create.lua alternates them)."""
    queries = load_queries()
    caller = {key: _literal(value) for key, value in token_claims(token).items()}
    common = {**caller, "deadline": "'2099-12-31'", "none_match_any": "false",
              "none_match": "'{}'", "match_any": "false", "match": "'{}'",
              "check_match": "false"}
    update = (f"\\set i random(1, {widgets})\n"
              + script(queries["upsert_widget"], {
                  **common, "name": "('widget-' || CAST(:i AS text))",
                  "info_url": "('https://www.example.com/updated/' || CAST(:i AS text))"}))
    name = f"('fl-{run}-' || CAST(:client_id AS text) || '-' || CAST(:n AS text))"
    create = ("\\set n random(1, 1000000000)\n"
              + script(queries["insert_widget"], {
                  **common, "name": name, "info_url": "'https://www.example.com/new'"})
              + script(queries["delete_widget"], {**common, "name": name}))
    return {"update": update, "create": create}


def pgbench() -> str:
    found = shutil.which("pgbench") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    if not found:
        raise SystemExit("bench: pgbench not found (Debian: postgresql-client)")
    return found


def run(url: str, body: str, *, clients: int, seconds: int) -> tuple[float, float]:
    """(statements per second, mean latency ms) of ``body`` under pgbench."""
    statements = body.count(";\n")
    env = {**os.environ, "PGOPTIONS": SESSION_OPTIONS}
    with tempfile.TemporaryDirectory(prefix="widgetsvc-floor-") as work:
        path = Path(work) / "floor.sql"
        path.write_text(body, encoding="utf-8")
        done = subprocess.run(
            [pgbench(), "-n", "-M", "prepared", "-c", str(clients), "-j", "1",
             "-T", str(seconds), "-f", str(path), url],
            capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: pgbench failed:\n{done.stdout}{done.stderr}")
    out = done.stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if failed and int(failed.group(1)):
        raise SystemExit(f"bench: pgbench floor had failures:\n{out}")
    return tps * statements, float(latency.group(1)) if latency else 0.0
