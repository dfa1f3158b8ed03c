"""Revocations (docs/API.md §6): expired ones are purged, by every logout (bounded) and by
``bin/purge-revoked``; and the per-request auth query uses indexes, not a table scan."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest

from tests.helpers import LOGOUT, PASSWORD, USER, bearer, login, plan_nodes
from tests.helpers_sql import TESTING_QUERIES, run_sql
from widgetsvc.db import load_queries
from widgetsvc.ops.localdb import REPO_ROOT

PURGE_PER_LOGOUT = 100


def counts(db) -> tuple[int, int]:
    row = run_sql(db, "attacks_revocation_counts")[0]
    return row["expired"], row["live"]


def jtis(db) -> set[str]:
    return {row["jti"] for row in run_sql(db, "attacks_revoked_jtis")}


def logout_once(app, users) -> str:
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    users.create(email, PASSWORD, admin=False)
    token = login(app, email)
    app.post(LOGOUT, headers=bearer(token), status=200)
    return token


# -- purged by logout --------------------------------------------------------------------------

def test_a_logout_purges_expired_revocations_and_keeps_live_ones(app, db, users):
    run_sql(db, "attacks_insert_expired_revocations", prefix="old-", count=20)
    run_sql(db, "attacks_insert_live_revocations", prefix="live-", count=5)
    assert counts(db) == (20, 5)
    token = logout_once(app, users)
    assert counts(db) == (0, 6)  # the five live ones and the new revocation
    assert {f"live-{i}" for i in range(1, 6)} <= jtis(db)
    # the revocation just written is honoured
    app.get(USER, headers=bearer(token), status=401)


def test_a_logout_purges_at_most_100_oldest_first(app, db, users):
    run_sql(db, "attacks_insert_expired_revocations", prefix="old-", count=150)
    assert counts(db) == (150, 0)

    logout_once(app, users)
    assert counts(db) == (150 - PURGE_PER_LOGOUT, 1)
    # the ones expired longest ago went first: "old-150" is the oldest, "old-1" the newest
    left = {j for j in jtis(db) if j.startswith("old-")}
    assert left == {f"old-{i}" for i in range(1, 51)}

    logout_once(app, users)
    assert counts(db) == (0, 2)


def test_a_logout_with_nothing_to_purge_still_revokes(app, db, users):
    token = logout_once(app, users)
    assert counts(db) == (0, 1)
    app.get(USER, headers=bearer(token), status=401)


# -- purged by bin/purge-revoked ---------------------------------------------------------------

def run_purge(database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "WIDGETSVC_ENV": "test"}
    env.pop("SECRET_KEY", None)  # the purge signs nothing and must not need a secret
    return subprocess.run(
        [str(REPO_ROOT / "bin" / "purge-revoked")], env=env, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL, check=False,
    )


def purged_count(output: str) -> int:
    match = re.search(r"purged (\d+) expired revocation", output)
    assert match, output
    return int(match.group(1))


@pytest.mark.e2e
def test_bin_purge_revoked_removes_every_expired_revocation(db, database_url):
    run_sql(db, "attacks_insert_expired_revocations", prefix="old-", count=250)
    run_sql(db, "attacks_insert_live_revocations", prefix="live-", count=7)
    done = run_purge(database_url)
    assert done.returncode == 0, done.stderr
    assert purged_count(done.stdout) == 250
    assert counts(db) == (0, 7)
    assert jtis(db) == {f"live-{i}" for i in range(1, 8)}

    again = run_purge(database_url)
    assert again.returncode == 0, again.stderr
    assert purged_count(again.stdout) == 0
    assert counts(db) == (0, 7)


# -- the auth query's plan ---------------------------------------------------------------------

def test_the_authenticate_query_uses_indexes(db, users):
    """Every authenticated request runs ``authenticate``: with a realistic number of users
    and revocations it must find both by index, never by scanning a table."""
    run_sql(db, "attacks_fill_users", count=2000)
    run_sql(db, "attacks_insert_live_revocations", prefix="live-", count=2000)
    run_sql(db, "attacks_insert_expired_revocations", prefix="old-", count=500)
    target = users.create("target@example.com", PASSWORD, admin=False)
    run_sql(db, "attacks_fill_sessions")
    run_sql(db, "attacks_analyze")

    query = load_queries()["authenticate"]
    explain = TESTING_QUERIES["attacks_explain_prefix"] + "\n" + query
    with db.pool.connection() as conn:
        rows = conn.execute(explain, {"subject": target.public_id,
                                      "token_id": "live-1234",
                                      "session_id": uuid.uuid4()}).fetchall()
    plan = rows[0]["QUERY PLAN"][0]["Plan"]
    nodes = list(plan_nodes(plan))
    kinds = {node["Node Type"] for node in nodes}
    assert "Seq Scan" not in kinds, nodes
    index_scans = {(node.get("Relation Name"), node.get("Index Name"))
                   for node in nodes if "Index" in node["Node Type"]}
    assert ("users", "users_public_id_key") in index_scans, nodes
    assert ("revoked_tokens", "revoked_tokens_pkey") in index_scans, nodes
    assert ("sessions", "sessions_pkey") in index_scans, nodes

    # and the query answers what the middleware needs
    with db.pool.connection() as conn:
        row = conn.execute(query, {"subject": target.public_id,
                                   "token_id": "live-1234", "session_id": uuid.uuid4()}).fetchone()
    assert row["email"] == "target@example.com" and row["revoked"] is True
