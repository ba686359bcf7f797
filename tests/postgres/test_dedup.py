"""Deduplication by event id holds when several processes send the same ids at the same moment.

Each id is sent by every racer at once (a webhook delivered twice at once, by several servers),
with ``app.send`` or from a step (``send_event``): one event is stored per id, every send returns
that event's id, and the function it triggers runs once per id.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from collections import Counter
from contextlib import closing
from multiprocessing.synchronize import Barrier
from typing import Any

import psycopg
import pytest

import tarry
from tarry._store.sqlite import sqlite_path

RACERS = 4
IDS = 60
pytestmark = pytest.mark.timeout(300)


def _connect(url: str) -> Any:
    if url.startswith("sqlite"):
        return closing(sqlite3.connect(sqlite_path(url)[0], timeout=30, isolation_level=None))
    return psycopg.connect(url, autocommit=True)


def _record_effect(url: str, order: str) -> None:
    with _connect(url) as conn:
        conn.execute("INSERT INTO effects (order_id) VALUES (" + ("?" if url.startswith("sqlite") else "%s") + ")",
                     (order,))  # fmt: skip


def _app(url: str) -> tarry.Tarry:
    app = tarry.Tarry("dedup", database_url=url)

    @app.function(trigger="order/placed", id="fulfil", retries=0)
    async def fulfil(ctx: tarry.Context) -> str:
        order: str = ctx.event.data["order"]
        await ctx.step.run("effect", _record_effect, url, order)
        return order

    @app.function(trigger="order/relay", id="relay", retries=0)
    async def relay(ctx: tarry.Context) -> str:
        n = ctx.event.data["n"]
        [event_id] = await ctx.step.send_event("forward", _order(n))
        return event_id

    return app


def _order(n: int) -> tarry.Event:
    return tarry.Event("order/placed", {"order": f"o-{n}"}, id=f"order-{n}")


def _racer(url: str, by_step: bool, barrier: Barrier, results: Any) -> None:
    async def race() -> list[str]:
        app = _app(url)
        ids = []
        async with app:
            barrier.wait()  # every racer is started
            for n in range(IDS):
                await asyncio.get_running_loop().run_in_executor(None, barrier.wait)  # all send id n at once
                if by_step:  # the run starts in this process and sends at once: the racers' steps collide
                    [relay_id] = await app.send(tarry.Event("order/relay", {"n": n}))
                    [run] = await app.runs_for_event(relay_id)
                    ids.append((await app.wait_for_run(run.id, timeout=60)).output)
                else:
                    [event_id] = await app.send(_order(n))
                    ids.append(event_id)
            await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
            await app.idle(timeout=60)
        return ids

    results.put(asyncio.run(race()))


@pytest.mark.parametrize("by_step", [False, True], ids=["send", "send_event"])
def test_concurrent_sends_of_one_id_from_several_processes_store_and_run_it_once(db_url: str, by_step: bool) -> None:
    async def migrate() -> None:  # the schema first, so the racers race on events, not on migrations
        app = tarry.Tarry("dedup", database_url=db_url)
        await app.start(worker=False)
        await app.close()

    asyncio.run(migrate())
    with _connect(db_url) as conn:
        conn.execute("CREATE TABLE effects (order_id TEXT NOT NULL)")
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(RACERS, timeout=60), spawn.Queue()
    racers = [spawn.Process(target=_racer, args=(db_url, by_step, barrier, results)) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    returned = [results.get(timeout=240) for _ in racers]
    for racer in racers:
        racer.join(30)
        assert racer.exitcode == 0

    async def finish() -> list[tarry.Run]:  # runs a racer left queued when it closed are run here
        app = _app(db_url)
        async with app:
            await app.idle(timeout=60)
            return await app.list_runs(function_id="fulfil", limit=10 * IDS)

    runs = asyncio.run(finish())
    with _connect(db_url) as conn:
        stored = conn.execute("SELECT id FROM events WHERE name = 'order/placed'").fetchall()
        done = Counter(order for (order,) in conn.execute("SELECT order_id FROM effects").fetchall())
    assert len(stored) == IDS, "one event stored per id"
    for n in range(IDS):
        assert len({ids[n] for ids in returned}) == 1, f"every send of order-{n} returned the same id"
    assert {ids[n] for ids in returned for n in range(IDS)} == {event_id for (event_id,) in stored}
    assert sorted(r.event.id for r in runs) == sorted(event_id for (event_id,) in stored), "one run per event"
    assert all(r.status == tarry.RunStatus.COMPLETED for r in runs)
    assert done == Counter({f"o-{n}": 1 for n in range(IDS)}), "the triggered function ran once per id"
