"""The per-block widget counts (sql/migrations/0004_widget_blocks.sql) and the page query that
relies on them: the counts follow every write, and every page equals a plain OFFSET's."""

from __future__ import annotations

import shutil
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import PASSWORD, plan_nodes
from tests.helpers_sql import TESTING_QUERIES, run_sql
from widgetsvc.auth.accounts import Accounts
from widgetsvc.db import MIGRATIONS_DIR, Database, load_queries
from widgetsvc.ops.migrate import migrate

BLOCK = 4096
QUERIES = load_queries()


@pytest.fixture
def owner(users):
    return users.create(f"owner-{uuid.uuid4().hex[:8]}@example.com", PASSWORD, admin=True)


def page(db: Database, owner, *, offset: int, limit: int = 10) -> tuple[int, list[str]]:
    """The service's page query: (total, names), as the caller ``owner``."""
    rows = db.all("widget_page", subject=owner.public_id, token_id="not-revoked",
                  session_id=uuid.uuid4(), limit=limit, offset=offset)
    return rows[0]["total_items"], [row["name"] for row in rows if row["name"] is not None]


def plain_page(db: Database, *, offset: int, limit: int = 10) -> list[str]:
    return [row["name"] for row in run_sql(db, "blocks_plain_page", limit=limit, offset=offset)]


def assert_blocks_match_rows(db: Database) -> None:
    kept = run_sql(db, "blocks_kept")
    assert kept == run_sql(db, "blocks_counted")
    assert all(row["widgets"] > 0 for row in kept)  # emptied blocks are removed


def blocks_of(ids) -> dict[int, int]:
    counts: dict[int, int] = {}
    for i in ids:
        counts[i - i % BLOCK] = counts.get(i - i % BLOCK, 0) + 1
    return dict(sorted(counts.items()))


# ids in five blocks, with the edges of each block likely
ids = st.one_of(
    st.integers(1, 5 * BLOCK - 1),
    st.sampled_from([1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 1, 2 * BLOCK, 4 * BLOCK]),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.sets(ids, min_size=1, max_size=40)),
        st.tuples(st.just("delete"), st.sets(ids, min_size=1, max_size=40)),
        st.tuples(st.just("truncate"), st.just(frozenset())),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_block_counts_follow_every_insert_delete_and_truncate(db, owner, steps):
    run_sql(db, "blocks_truncate")
    present: set[int] = set()
    for action, chosen in steps:
        if action == "insert":
            new = sorted(set(chosen) - present)
            if new:
                assert run_sql(db, "blocks_insert_ids", ids=new, owner_id=owner.id) == len(new)
            present |= set(new)
        elif action == "delete":
            assert run_sql(db, "blocks_delete_ids", ids=sorted(chosen)) == len(chosen & present)
            present -= set(chosen)
        else:
            run_sql(db, "blocks_truncate")
            present.clear()
        assert_blocks_match_rows(db)
        kept = {row["first_id"]: row["widgets"] for row in run_sql(db, "blocks_kept")}
        assert kept == blocks_of(present)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.sets(ids, min_size=0, max_size=120),
       probes=st.lists(st.tuples(st.integers(0, 130), st.integers(1, 100)), max_size=8))
def test_every_page_equals_a_plain_offset(db, owner, chosen, probes):
    run_sql(db, "blocks_truncate")
    if chosen:
        run_sql(db, "blocks_insert_ids", ids=sorted(chosen), owner_id=owner.id)
    # the offsets where blocks meet, their neighbours, the end, and past it
    ordered = sorted(chosen)
    edges = [i for i, wid in enumerate(ordered)
             if i == 0 or wid // BLOCK != ordered[i - 1] // BLOCK]
    offsets = {0, len(ordered), len(ordered) + 1} | {e + d for e in edges for d in (-1, 0, 1)}
    cases = {(max(0, o), 10) for o in offsets} | set(probes)
    for offset, limit in sorted(cases):
        total, names = page(db, owner, offset=offset, limit=limit)
        assert total == len(ordered)
        assert names == plain_page(db, offset=offset, limit=limit), (offset, limit)


def test_pages_past_the_first_block_equal_a_plain_offset(db, owner):
    """Offsets of 4096 and more start from a block: around every block edge, with gaps left
    by deletes (a block partly emptied, one emptied whole), pages equal a plain OFFSET's."""
    run_sql(db, "blocks_insert_generated", count=5 * BLOCK + 100, owner_id=owner.id)
    run_sql(db, "blocks_delete_range", first=BLOCK - 50, last=BLOCK + 50)
    run_sql(db, "blocks_delete_range", first=2 * BLOCK, last=3 * BLOCK - 1)
    run_sql(db, "blocks_delete_range", first=4 * BLOCK + 1, last=4 * BLOCK + 1)
    assert_blocks_match_rows(db)
    blocks = run_sql(db, "blocks_kept")
    assert BLOCK * 2 not in {row["first_id"] for row in blocks}  # emptied, so removed
    total = sum(row["widgets"] for row in blocks)
    edges, before = [], 0
    for row in blocks:
        edges.append(before)
        before += row["widgets"]
    offsets = {o + d for o in [*edges, 4095, 4096, total] for d in (-2, -1, 0, 1, 2)}
    for offset in sorted(o for o in offsets if o >= 0):
        for limit in (1, 10, 100):
            assert page(db, owner, offset=offset, limit=limit) == (
                total, plain_page(db, offset=offset, limit=limit)), (offset, limit)


def test_a_huge_offset_is_simply_past_the_end(db, owner):
    run_sql(db, "blocks_insert_generated", count=5, owner_id=owner.id)
    assert page(db, owner, offset=2**62) == (5, [])


def test_concurrent_deletes_from_one_block_add_up(db, owner, config):
    """Each deleter's count change must see the others' (no lost update), and the one that
    empties the block removes it, whichever thread that is."""
    run_sql(db, "blocks_insert_generated", count=40, owner_id=owner.id)
    all_ids = [row["first_id"] for row in run_sql(db, "blocks_kept")]
    assert all_ids == [0]
    pool = Database(config.database_url, min_size=8, max_size=8)
    pool.pool.open(wait=True, timeout=10)
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def delete_five(first: int) -> None:
        try:
            start.wait(10)
            for i in range(first, first + 5):
                with pool.pool.connection() as conn:
                    conn.execute(TESTING_QUERIES["blocks_delete_ids"], {"ids": [i]})
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    try:
        threads = [threading.Thread(target=delete_five, args=(1 + 5 * n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
    finally:
        pool.close()
    assert failures == []
    assert run_sql(db, "blocks_kept") == []
    assert page(db, owner, offset=0) == (0, [])


def test_a_deep_page_skips_less_than_one_block(db, owner):
    """With 20,000 widgets, the page at offset 18,000 reads fewer than 4,096 + 10 ids, where
    a plain OFFSET reads 18,010."""
    run_sql(db, "blocks_insert_generated", count=20_000, owner_id=owner.id)
    run_sql(db, "blocks_vacuum_analyze")
    explain = TESTING_QUERIES["blocks_explain_analyze_prefix"] + "\n" + QUERIES["widget_page"]
    with db.pool.connection() as conn:
        plan = conn.execute(explain, {"subject": owner.public_id, "token_id": "x",
                                      "session_id": uuid.uuid4(),
                                      "limit": 10, "offset": 18_000}).fetchone()
    nodes = list(plan_nodes(plan["QUERY PLAN"][0]["Plan"]))
    scans = [n for n in nodes if n.get("Relation Name") == "widgets"
             and n["Node Type"] in ("Index Only Scan", "Index Scan", "Seq Scan")]
    assert "Seq Scan" not in {n["Node Type"] for n in scans}
    walked = max(n["Actual Rows"] for n in scans)
    assert 10 <= walked < BLOCK + 10, scans
    assert page(db, owner, offset=18_000) == (20_000, plain_page(db, offset=18_000))


@pytest.mark.parametrize("query", ["widget_by_name", "widget_page", "authenticate"])
def test_the_caller_check_is_inlined_into_each_query(db, owner, query):
    """token_caller is a SQL function the planner inlines: each query shows the index
    lookups of the caller, no opaque function call (with realistic numbers of users,
    sessions and revocations: on near-empty tables a scan is the cheaper plan)."""
    run_sql(db, "attacks_fill_users", count=2000)
    run_sql(db, "attacks_fill_sessions")
    run_sql(db, "attacks_insert_live_revocations", prefix="live-", count=2000)
    run_sql(db, "attacks_analyze")
    explain = TESTING_QUERIES["attacks_explain_prefix"] + "\n" + QUERIES[query]
    params = {"subject": owner.public_id, "token_id": "x", "session_id": uuid.uuid4(),
              "name": "w", "limit": 10,
              "offset": 0}
    with db.pool.connection() as conn:
        plan = conn.execute(explain, params).fetchone()["QUERY PLAN"][0]["Plan"]
    nodes = list(plan_nodes(plan))
    assert "Function Scan" not in {n["Node Type"] for n in nodes}
    indexes = {n.get("Index Name") for n in nodes}
    assert {"users_public_id_key", "revoked_tokens_pkey", "sessions_pkey"} <= indexes, nodes


@pytest.mark.e2e
def test_migration_0004_counts_the_widgets_already_there(pg_cluster, tmp_path):
    """A database that has widgets before 0004 starts with exact blocks (and exact pages),
    even with a writer in flight while it runs: the migration waits for that writer's commit
    and counts its widget too."""
    name = f"blocks_{uuid.uuid4().hex[:10]}"
    url = pg_cluster.create_database(name)
    try:
        early = tmp_path / "early"
        early.mkdir()
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.stem < "0004":
                shutil.copy(path, early / path.name)
        migrate(url, early, log=lambda _m: None)
        db = Database(url, min_size=2, max_size=2)
        db.pool.open(wait=True, timeout=10)
        try:
            owner = Accounts(db, 4).create("early@example.com", PASSWORD, admin=True)
            run_sql(db, "blocks_insert_ids", ids=[1, 2, BLOCK + 7], owner_id=owner.id)
            with db.pool.connection() as writer:
                writer.autocommit = False
                writer.execute(TESTING_QUERIES["blocks_insert_ids"],
                               {"ids": [3 * BLOCK], "owner_id": owner.id})
                done: list[object] = []
                migrator = threading.Thread(
                    target=lambda: done.append(migrate(url, log=lambda _m: None)))
                migrator.start()
                migrator.join(2)
                assert migrator.is_alive()  # waiting for the writer, not counting without it
                writer.commit()
                writer.autocommit = True
            migrator.join(60)
            assert not migrator.is_alive() and done[0][0] == "0004_widget_blocks"
            assert run_sql(db, "blocks_kept") == [
                {"first_id": 0, "widgets": 2},
                {"first_id": BLOCK, "widgets": 1},
                {"first_id": 3 * BLOCK, "widgets": 1},
            ]
            assert page(db, owner, offset=2) == (4, [f"w-{BLOCK + 7}", f"w-{3 * BLOCK}"])
        finally:
            db.close()
    finally:
        pg_cluster.drop_database(name)
