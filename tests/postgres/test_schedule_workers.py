"""A one-minute schedule in three `tarry worker` processes on one PostgreSQL database: each tick is fired once
and runs once. The processes share a clock thirty times faster than the wall clock (tests/postgres/schedule_app.py),
so a minute of ticks takes two real seconds."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.postgres.conftest import spawn_worker, stop_workers
from tests.postgres.schedule_app import SPEED

APP = "tests/postgres/schedule_app.py:app"
EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
REAL_S = 16  # eight minutes of ticks
pytestmark = pytest.mark.timeout(120)


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]  # type: ignore[arg-type]


def test_each_tick_of_a_one_minute_schedule_runs_once_across_three_worker_processes(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE ticks (run_id TEXT, scheduled_at TEXT, pid INTEGER)")
    clock = f"{round(EPOCH.timestamp() * 1000)},{time.time_ns() // 1_000_000}"
    workers = []
    try:
        for _ in range(3):  # each stores the schedule as it starts: one schedule all the same
            workers.append(spawn_worker(APP, pg_url, SCHEDULE_CLOCK=clock))
        time.sleep(REAL_S)
    finally:
        stop_workers(workers)
    assert [p.returncode for p in workers] == [0, 0, 0]
    assert rows(pg_url, "SELECT function_id, cron, timezone FROM schedules") == [("every-minute", "* * * * *", "UTC")]
    ticks = sorted(str(r[0]) for r in rows(pg_url, "SELECT data::json->>'scheduled_at' FROM events "
                                                  "WHERE name = 'tarry/scheduled.timer'"))  # fmt: skip
    assert len(ticks) >= REAL_S * SPEED // 60 - 3, ticks  # the first worker started within a few seconds
    minutes = [datetime.fromisoformat(t) for t in ticks]
    assert minutes == [minutes[0] + timedelta(minutes=i) for i in range(len(minutes))], ticks  # none twice, none lost
    per_event = rows(pg_url, "SELECT e.id, count(r.id) FROM events e LEFT JOIN runs r ON r.event_id = e.id "
                             "WHERE e.name = 'tarry/scheduled.timer' GROUP BY e.id")  # fmt: skip
    assert [n for _, n in per_event] == [1] * len(ticks)  # one run per tick
    bodies = Counter(str(r[0]) for r in rows(pg_url, "SELECT scheduled_at FROM ticks"))
    completed = rows(pg_url, "SELECT count(*) FROM runs WHERE status = 'completed'")[0][0]
    assert set(bodies.values()) == {1} and len(bodies) == completed >= len(ticks) - 1  # each body ran once
