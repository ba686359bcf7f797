"""Runs queued behind a concurrency limit survive a restart: after it they start in creation order,
and the limit holds for them as it did before (API §9: limits survive restarts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import tarry
from tests.conftest import LIMIT

QUEUED = 5


def define(app: tarry.Tarry, started: list[str], held: asyncio.Event, active: dict[str, int]) -> None:
    """The same function, as each process that opens the database defines it."""

    @app.function(trigger="flow/job", retries=0, concurrency=tarry.Concurrency(limit=1, key="event.data.key"))
    async def job(ctx: tarry.Context) -> str:
        key: str = ctx.event.data["key"]

        async def work() -> str:
            started.append(ctx.run_id)
            active[key] = active.get(key, 0) + 1
            active["most"] = max(active.get("most", 0), active[key])
            try:
                if ctx.event.data.get("holds") and not held.is_set():
                    await asyncio.Event().wait()  # executing, holding the slot, until the app closes
                await asyncio.sleep(0.01)  # real time: a second run of the key would start meanwhile
            finally:
                active[key] -= 1
            return key

        done: str = await ctx.step.run("work", work)
        return done


async def until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + LIMIT
    while not await check():  # type: ignore[misc]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_runs_queued_by_concurrency_start_in_creation_order_after_a_restart(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    started: list[str] = []
    held = asyncio.Event()  # set: the first run no longer blocks (the app it blocked in is gone)
    active: dict[str, int] = {}
    before = make_app()
    define(before, started, held, active)
    async with before:
        [first] = await before.send(tarry.Event("flow/job", {"key": "a", "holds": True}))
        [holder] = await before.runs_for_event(first)
        await until(lambda: _started(started, holder.id), "the first run to hold the slot")
        queued = []
        for n in range(QUEUED):  # one send each: creation order is the order of these sends
            [event_id] = await before.send(tarry.Event("flow/job", {"key": "a", "n": n}))
            queued += [run.id for run in await before.runs_for_event(event_id)]
        [other] = await before.send(tarry.Event("flow/job", {"key": "b"}))  # another partition: not held
        [other_run] = await before.runs_for_event(other)
        assert (await before.wait_for_run(other_run.id, timeout=LIMIT)).status == "completed"
        for run_id in queued:
            run = await before.get_run(run_id)
            assert run is not None and (run.status, run.queued_reason) == ("queued", "concurrency"), run
        assert started == [holder.id, other_run.id]
    held.set()

    started.clear()
    after = make_app()  # a new app object on the same database, as a restarted process opens it
    define(after, started, held, active)
    async with after:
        await after.idle(timeout=LIMIT)
        runs = [await after.get_run(run_id) for run_id in [holder.id, *queued]]
    assert [run.status if run else None for run in runs] == ["completed"] * (QUEUED + 1)
    assert started == [holder.id, *queued], "the held run again first, then the queued ones in creation order"
    assert active["most"] == 1, "never two runs of one key at once, before or after the restart"


async def _started(started: list[str], run_id: str) -> bool:
    return run_id in started


async def test_runs_held_by_a_limit_the_code_has_dropped_start_after_a_restart(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    first = make_app()
    gate = asyncio.Event()

    @first.function(trigger="flow/job", id="job", concurrency=tarry.Concurrency(limit=1))
    async def limited(ctx: tarry.Context) -> str:
        await ctx.step.run("work", gate.wait)
        return "done"

    async with first:
        ids = await first.send([tarry.Event("flow/job", {"n": n}) for n in range(3)])

        async def one_runs_two_held() -> bool:
            runs = [r for i in ids for r in await first.runs_for_event(i)]
            return sorted((r.status, r.queued_reason) for r in runs) == [
                ("queued", "concurrency"), ("queued", "concurrency"), ("running", None)]  # fmt: skip

        await until(one_runs_two_held, "one run executing and two held by the limit")
        runs = [r for i in ids for r in await first.runs_for_event(i)]

    second = make_app()  # the same function, its limit dropped from the code

    @second.function(trigger="flow/job", id="job")
    async def unlimited(ctx: tarry.Context) -> str:
        return "done"

    async with second:
        done = [await second.wait_for_run(r.id, timeout=LIMIT) for r in runs]
    assert [r.status for r in done] == ["completed"] * 3
