"""Every page of a list of runs is a range scan of one index, whatever its filters: no full scan, no sort."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import tarry
from tarry._store.base import RunQuery
from tarry._store.queries import load_queries

QUERIES = [name for name in load_queries("sqlite") if name.startswith("query_runs_") and name != "query_runs_of_event"]


@pytest.mark.parametrize("name", QUERIES)
async def test_a_page_of_runs_reads_one_index_in_order(tmp_path: Path, name: str) -> None:
    url = "sqlite:///" + str(tmp_path / "plans.db")
    app = tarry.Tarry("plans", database_url=url)
    await app.start(worker=False)
    await app.close()
    params = {**RunQuery(after=(5, "R")).bounds(), "function_id": "f", "status": "failed",
              "statuses": '["failed", "cancelled"]', "event_id": None, "rerun_of": "Q", "oldest": 0, "limit": 51}  # fmt: skip
    with sqlite3.connect(tmp_path / "plans.db") as conn:
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + load_queries("sqlite")[name], params))
    assert "SEARCH r USING INDEX runs_" in plan and "(created_at,id)>" in plan, plan
    assert "TEMP B-TREE" not in plan and "SCAN r" not in plan, plan
