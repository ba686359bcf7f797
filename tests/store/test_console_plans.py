"""What the console asks of a store with many runs is an index probe, not a scan of every run: the runs of
an event, and the reruns of a run (the figures are in docs/benchmarks.md, "The console at 100,000 runs")."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tarry
from tarry._store.base import RunQuery
from tarry._store.queries import load_queries

RUNS = 3000  # enough that PostgreSQL's planner prefers an index to reading the table


def _sqlite_plan(path: Path, name: str, params: dict[str, object]) -> str:
    with sqlite3.connect(path) as conn:
        return " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + load_queries("sqlite")[name], params))


async def test_sqlite_finds_an_events_runs_and_a_runs_reruns_by_their_indexes(tmp_path: Path) -> None:
    app = tarry.Tarry("plans", database_url="sqlite:///" + str(tmp_path / "plans.db"))
    await app.start(worker=False)
    await app.close()
    of_event = {**RunQuery(event_id="E").bounds(), "event_id": "E", "function_id": None, "statuses": None,
                "oldest": 0, "limit": 51}  # fmt: skip
    plan = _sqlite_plan(tmp_path / "plans.db", "query_runs_of_event", of_event)
    assert "USING INDEX runs_event (event_id=?)" in plan and "SCAN r" not in plan, plan
    reruns = {**RunQuery(rerun_of="R").bounds(), "rerun_of": "R", "event_id": None, "function_id": None,
              "statuses": None, "limit": 21}  # fmt: skip
    plan = _sqlite_plan(tmp_path / "plans.db", "query_runs_of_rerun_newest", reruns)
    assert "USING INDEX runs_rerun_of (rerun_of=? AND (created_at,id)" in plan, plan
    assert "SCAN r" not in plan and "TEMP B-TREE" not in plan, plan  # no run read but reruns, in index order


@pytest.fixture
def pg_plans(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL database of the schema with ``RUNS`` runs (each its own event, one in ten a rerun), analysed."""
    import psycopg

    admin, template = request.getfixturevalue("postgres_template")
    database = f"tarry_plans_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    url = admin.rpartition("/")[0] + "/" + database
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO events (id, name, data, ts, received_at, delivered) "
                     "SELECT 'E' || lpad(g::text, 8, '0'), 'plans/go', '{}', g, g, 1 FROM generate_series(1, %s) g",
                     (RUNS,))  # fmt: skip
        conn.execute("INSERT INTO runs (id, function_id, event_id, status, created_at, queued_at, rerun_of) "
                     "SELECT 'R' || lpad(g::text, 8, '0'), 'f', 'E' || lpad(g::text, 8, '0'), 'completed', g, g, "
                     "CASE WHEN g %% 10 = 0 THEN 'R' || lpad((g - 1)::text, 8, '0') END FROM generate_series(1, %s) g",
                     (RUNS,))  # fmt: skip
        conn.execute("ANALYZE")
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _pg_plan(url: str, name: str, params: dict[str, object]) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("EXPLAIN " + load_queries("postgresql")[name], params).fetchall()
    return "\n".join(str(r[0]) for r in rows)


def test_postgresql_finds_an_events_runs_and_a_runs_reruns_by_their_indexes(pg_plans: str) -> None:
    of_event = {**RunQuery(event_id="E00001500").bounds(), "event_id": "E00001500", "function_id": None,
                "statuses": None, "oldest": False, "limit": 51}  # fmt: skip
    plan = _pg_plan(pg_plans, "query_runs_of_event", of_event)
    assert "using runs_event on runs" in plan, plan
    assert "runs_created" not in plan and "Seq Scan on runs" not in plan, plan  # not every run read in order
    reruns = {**RunQuery(rerun_of="R00001499").bounds(), "rerun_of": "R00001499", "event_id": None,
              "function_id": None, "statuses": None, "limit": 21}  # fmt: skip
    plan = _pg_plan(pg_plans, "query_runs_of_rerun_newest", reruns)
    assert "using runs_rerun_of on runs" in plan and "Seq Scan on runs" not in plan, plan
