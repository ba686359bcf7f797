"""Fencing: a worker whose lease expired cannot record over the run's new owner.

Each case holds the run's row as ``recover`` does (its UPDATE, not yet committed, in a
connection of its own) while the old owner writes: the write must wait for the row, then
find that it lost the run, and store nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

import tarry
from tarry._store.base import Control, Park, StepWrite
from tarry._store.sql import SQLStore

OLD = "w-old"
Write = Callable[[SQLStore, str, int], Awaitable[Any]]


async def _record(store: SQLStore, run_id: str, now: int) -> Any:
    step = StepWrite("late", "run", "completed", 1, '"late"', None, now, now)
    return (await store.record_step(run_id, OLD, step, None, [], now, 0))[0]


async def _park(store: SQLStore, run_id: str, now: int) -> Any:
    step = StepWrite("late", "sleep", "sleeping", 0, None, None, now, None, now + 60_000)
    return (await store.park(run_id, OLD, "sleeping", [step], [], [], [], now))[0]


async def _finish(store: SQLStore, run_id: str, now: int) -> Any:
    return await store.finish(run_id, OLD, "completed", '"late"', None, now)


@pytest.mark.parametrize(
    ("write", "lost"), [(_record, Control.LOST), (_park, Park.LOST), (_finish, False)], ids=["record", "park", "finish"]
)
async def test_a_late_write_of_the_old_owner_waits_for_recover_and_then_finds_the_run_lost(
    pg_url: str, write: Write, lost: Any
) -> None:
    app = tarry.Tarry("fencing", database_url=pg_url)

    @app.function(trigger="job/start", retries=0)
    async def job(ctx: tarry.Context) -> str:
        return "done"

    await app.start(worker=False)
    try:
        store = app.engine.store
        assert isinstance(store, SQLStore)
        [event_id] = await app.send(tarry.Event("job/start"))
        now = app.engine.clock.now_ms()
        claimed, _ = await store.tick(OLD, 1, now)  # OLD owns the run; it never heartbeats
        [run_id] = [r.id for r in claimed]
        with psycopg.connect(pg_url) as recovering:  # recover, up to its commit
            recovering.execute(store.q["recover_runs"], {"alive_since": now + 1, "now": now})
            late = asyncio.ensure_future(write(store, run_id, now))
            await _until_waiting_for_a_lock(pg_url, late)
            recovering.commit()
        assert await late == lost
        run = await app.get_run(run_id)
        assert run is not None and run.status == tarry.RunStatus.QUEUED and run.steps == []
        assert [r.id for r in await app.runs_for_event(event_id)] == [run_id]
    finally:
        await app.close()


async def _until_waiting_for_a_lock(url: str, write: asyncio.Future[Any]) -> None:
    """Until another backend of the database waits for a lock (or the write is done: it did not wait)."""
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as conn:
        while not write.done() and time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            await asyncio.sleep(0.02)
