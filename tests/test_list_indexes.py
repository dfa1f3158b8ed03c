"""Every sort × filter of the widget list is served by an index (docs/API.md §8.7): at a
million widgets, no plan of a sorted or filtered page (first or later, offset or cursor) reads
``widgets`` sequentially, nor does an offset page's total for any filter: a deadline range is
counted on the deadlines' own index (migration 0013), even one holding most of the table, where
the (deadline, name) index would lose to a parallel sequential scan."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import psycopg
import pytest

from tests.helpers import PASSWORD
from tests.helpers_sql import TESTING_QUERIES, run_sql

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
    return [o["public_id"] for o in owners]


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
