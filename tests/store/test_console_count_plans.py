"""The console's counts and live reads use an index each: a status's count reads only the status index,
a function's or an event's counts their own index, and the runs a live page watches their keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import tarry
from tarry._store.base import RunQuery
from tarry._store.queries import load_queries

RANGE = {"lo_at": 5, "hi_at": 900}


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [("count_runs_in_status", {**RANGE, "status": "failed"}, "USING COVERING INDEX runs_status (status=? AND created_at>? AND created_at<?)"),
     ("count_runs_of_function", {**RANGE, "function_id": "f"}, "USING INDEX runs_function (function_id=? AND created_at>? AND created_at<?)"),
     ("count_runs_of_event", {**RANGE, "event_id": "E", "function_id": None}, "INDEX runs_event (event_id=?)"),
     ("runs_by_ids", {"ids": '["a", "b"]'}, "USING INDEX sqlite_autoindex_runs_1 (id=?)"),
     ("query_one_run", {**RunQuery().bounds(), "run_id": "R", "rerun_of": None, "event_id": None,
                        "function_id": None, "statuses": None, "limit": 2}, "USING INDEX sqlite_autoindex_runs_1 (id=?)")],
)  # fmt: skip
async def test_the_consoles_reads_probe_an_index(tmp_path: Path, name: str, params: dict[str, object],
                                                 expected: str) -> None:  # fmt: skip
    app = tarry.Tarry("plans", database_url="sqlite:///" + str(tmp_path / "plans.db"))
    await app.start(worker=False)
    await app.close()
    with sqlite3.connect(tmp_path / "plans.db") as conn:
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + load_queries("sqlite")[name], params))
    assert expected in plan, plan
    assert "SCAN r " not in plan + " " and "SCAN runs" not in plan, plan
