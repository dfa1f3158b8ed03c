"""Every sort × filter of the widget list is served by an index (docs/API.md §8.7): at a
million widgets, no plan of a sorted or filtered page (first or later, offset or cursor) reads
``widgets`` sequentially, nor does an offset page's total for any filter: a deadline range is
counted on the deadlines' own index (migration 0013), even one holding most of the table, where
the (deadline, name) index would lose to a parallel sequential scan."""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime

import psycopg
import pytest

from tests.helpers import PASSWORD, forged_sid
from tests.helpers_sql import TESTING_QUERIES, run_sql
from widgetsvc.db import load_queries
from widgetsvc.paging import Position, WidgetListing, _micros

pytestmark = pytest.mark.slow  # seeds a million widgets (not in bin/test --fast)

MILLION = 1_000_000
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SORTS = [("name", False), ("name", True), ("deadline", False), ("deadline", True),
         ("created_at", False), ("created_at", True)]


@pytest.fixture
def million(db, users, database_url) -> list:
    """A million widgets over twenty owners (one INSERT ... SELECT), analyzed; the owners'
    public_ids."""
    owners = [users.create(f"o{n}@example.com", PASSWORD, admin=False) for n in range(20)]
    started = time.monotonic()
    ids = [row["id"] for row in run_sql(db, "cursors_user_ids")]
    # Its own connection: the service's statement_timeout is no bound for a bulk load.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TESTING_QUERIES["cursors_seed_million"], {"owners": ids, "count": MILLION})
        conn.execute(TESTING_QUERIES["cursors_analyze"])
    print(f"seeded {MILLION} widgets in {time.monotonic() - started:.1f} s")
    return [o.public_id for o in owners]


def _filters(owner) -> dict[str, dict]:
    """Each filter alone, and all of them at once (widget_list's parameters)."""
    before = datetime(2024, 3, 1, tzinfo=UTC)
    after = datetime(2022, 3, 1, tzinfo=UTC)
    one = {
        "none": {},
        "deadline_before": {"deadline_to": before},
        "deadline_after": {"deadline_from": after},
        "deadline range": {"deadline_from": after, "deadline_to": before},
        "passed=true": {"deadline_to": NOW},
        "passed=false": {"deadline_from": NOW},
        "owner": {"owner": owner},
        "name_prefix": {"name_like": "seed-012%"},
        "name_prefix (rare)": {"name_like": "seed-099999%"},
    }
    one["all"] = {"deadline_from": after, "deadline_to": NOW, "owner": owner,
                  "name_like": "seed-01%"}
    return one


def test_no_sort_or_filter_reads_widgets_sequentially(db, million):
    plans: dict[str, str] = {}
    for (column, descending), (label, values), (page, after) in itertools.product(
            SORTS, _filters(million[3]).items(),
            [("first page", None), ("cursor page", "seed-0500000"), ("offset page 9000", None)]):
        params = {"sort_key": column, "descending": descending, "after_name": after,
                  "after_time": datetime(2025, 1, 1, tzinfo=UTC) if after else None,
                  "deadline_from": None, "deadline_to": None, "owner": None,
                  "name_like": None, "skip": 90_000 if "offset" in page else 0, "take": 26,
                  "counting": False, **values}
        lines = [row["line"] for row in run_sql(db, "cursors_plan", **params)]
        plans[f"{'-' if descending else ''}{column} / {label} / {page}"] = "\n".join(lines)
        if page == "first page" and values:
            lines = [row["line"] for row in run_sql(db, "cursors_plan",
                                                    **{**params, "counting": True})]
            plans[f"count / {label}"] = "\n".join(lines)
    assert len(plans) > 170
    sequential = {what: plan for what, plan in plans.items() if "Seq Scan on widgets" in plan}
    assert not sequential, "\n\n".join(f"{what}:\n{plan}" for what, plan in sequential.items())
    # the sorted pages read their sort's index in its order (no sort of the whole table)
    assert "widgets_deadline_name_idx" in plans["-deadline / none / cursor page"]
    assert "widgets_created_at_name_idx" in plans["created_at / none / first page"]
    assert "widgets_name_key" in plans["-name / none / cursor page"]
    for label in ["deadline_after", "passed=true", "deadline range"]:
        assert "Index Only Scan using widgets_deadline_idx" in plans[f"count / {label}"], label


STATIC = {"name": "widgets_name_key", "deadline": "widgets_deadline_name_idx",
          "created_at": "widgets_created_at_name_idx"}


def _generic_plan(conn: psycopg.Connection, text: str, params: dict) -> str:
    """EXPLAIN ANALYZE of the named statement ``text`` as the service runs it: prepared once
    and planned generically (plan_cache_mode=force_generic_plan, widgetsvc/db.py)."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    sql = re.sub(r"%\((\w+)\)s", number, text).replace("%%", "%")
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute(f"PREPARE page AS {sql}")
    try:
        cur = psycopg.ClientCursor(conn)
        cur.execute(f"EXPLAIN (ANALYZE, TIMING OFF, SUMMARY OFF) EXECUTE page("
                    f"{', '.join(['%s'] * len(names))})", [params[n] for n in names])
        return "\n".join(row[0] for row in cur.fetchall())
    finally:
        conn.execute("DEALLOCATE page")


def test_unfiltered_sorted_pages_are_one_generic_index_range_each(database_url, million):
    """widgets_by_<sort>: whatever the position (first page, a cursor deep in the table, one
    whose cut name is read by id), one generic plan reads its sort's index from there, only the
    rows it returns; an offset page walks its offset in the same index. Never a sequential scan,
    never a sort of the table."""
    owner = million[0]
    queries = load_queries()
    with psycopg.connect(database_url, autocommit=True) as conn:
        deep = conn.execute("SELECT id, name, deadline, created_at FROM widgets "
                            "WHERE name = 'seed-0900000'").fetchone()
        for (column, descending), page in itertools.product(
                SORTS, ["first page", "cursor page", "cut cursor page", "offset page 9000"]):
            statement = f"widgets_by_{column}{'_desc' if descending else ''}"
            listing = WidgetListing(per_page=25, number=9001 if "offset" in page else None,
                                    cursor=None if "offset" in page else "", position=None,
                                    sort=("-" if descending else "") + column)
            if "cursor page" in page:
                key = 0 if column == "name" else _micros({"deadline": deep[2],
                                                          "created_at": deep[3]}[column])
                cut = page.startswith("cut")
                position = Position(key, deep[0], deep[1][:5] if cut else deep[1], not cut)
                listing = WidgetListing(**{**listing.__dict__, "position": position})
            assert listing.statement == statement
            params = {**listing.params(), "subject": owner, "token_id": "t",
                      "session_id": forged_sid(owner)}
            plan = _generic_plan(conn, queries[statement], params)
            what = f"{statement} / {page}:\n{plan}"
            assert "Seq Scan on widgets" not in plan, what
            assert f"Index Scan{' Backward' if descending else ''} using {STATIC[column]}" \
                in plan, what
            assert "$" in plan, what  # the generic plan, its values as parameters
            scanned = re.search(rf"using {STATIC[column]} on widgets w .*actual rows=(\d+)",
                                plan)
            assert scanned, what
            rows = int(scanned.group(1))
            assert rows == (9000 * 25 + 25 if "offset" in page else 26), what
