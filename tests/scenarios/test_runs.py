"""Runs through the public API: reading, listing, waiting, cancelling, idling."""

from __future__ import annotations

import asyncio

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


async def test_list_runs_newest_first_with_filters(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="a")
    async def quick(ctx: tarry.Context) -> int:
        return ctx.event.data["n"]

    @app.function(trigger="b")
    async def slow(ctx: tarry.Context) -> None:
        await ctx.step.sleep("s", "1h")

    async with app:
        for n in range(3):
            await app.send(tarry.Event("a", {"n": n}))
        await app.send(tarry.Event("b"))
        await app.idle(timeout=LIMIT)
        everything = await app.list_runs()
        assert [r.function_id for r in everything] == ["slow", "quick", "quick", "quick"]
        assert [r.output for r in await app.list_runs(function_id="quick")] == [2, 1, 0]
        assert [r.function_id for r in await app.list_runs(status="sleeping")] == ["slow"]
        assert [r.output for r in await app.list_runs(status=tarry.RunStatus.COMPLETED, limit=2)] == [2, 1]
        with pytest.raises(ValueError, match="invalid status 'done'"):
            await app.list_runs(status="done")
        with pytest.raises(ValueError, match="invalid limit"):
            await app.list_runs(limit=0)


async def test_get_run_of_an_unknown_id_is_none(running: tarry.Tarry) -> None:
    assert await running.get_run("nope") is None
    assert await running.runs_for_event("nope") == []
    with pytest.raises(LookupError, match="nope"):
        await running.wait_for_run("nope", timeout=1)


async def test_wait_for_run_times_out_in_real_seconds(app: tarry.Tarry) -> None:
    @app.function(trigger="s")
    async def sleeper(ctx: tarry.Context) -> None:
        await ctx.step.sleep("s", "1h")

    async with app:
        run = await start_run(app, tarry.Event("s"))
        with pytest.raises(TimeoutError, match="still sleeping"):
            await app.wait_for_run(run.id, timeout=0.05)


async def test_cancel_a_sleeping_run_at_once(app: tarry.Tarry, clock: VirtualClock) -> None:
    ran_after = []

    @app.function(trigger="s")
    async def sleeper(ctx: tarry.Context) -> None:
        await ctx.step.sleep("s", "1h")
        ran_after.append(1)

    async with app:
        run = await start_run(app, tarry.Event("s"))
        assert await app.cancel_run(run.id) is True
        done = await app.get_run(run.id)
        assert done.status == "cancelled" and done.ended_at is not None
        await clock.advance("2h")
        assert (await app.get_run(run.id)).status == "cancelled"
        assert await app.cancel_run(run.id) is False
        assert await app.cancel_run("no-such-run") is False
    assert ran_after == []


async def test_cancel_a_running_run_at_its_next_step(app: tarry.Tarry) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    after = []

    async def long_step() -> str:
        inside.set()
        await asyncio.wait_for(release.wait(), LIMIT)
        return "first"

    @app.function(trigger="r")
    async def worker(ctx: tarry.Context) -> None:
        await ctx.step.run("first", long_step)
        await ctx.step.run("second", lambda: after.append(1))

    async with app:
        [event_id] = await app.send(tarry.Event("r"))
        await asyncio.wait_for(inside.wait(), LIMIT)
        [run] = await app.runs_for_event(event_id)
        assert run.status == "running"
        assert await app.cancel_run(run.id) is True
        release.set()
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "cancelled"
    assert after == []
    assert [s.id for s in done.steps] == ["first"], "the step in flight is recorded; the next never starts"


async def test_cancel_a_finished_run_returns_false(app: tarry.Tarry) -> None:
    @app.function(trigger="q")
    async def quick(ctx: tarry.Context) -> int:
        return 1

    async with app:
        run = await start_run(app, tarry.Event("q"))
        assert await app.cancel_run(run.id) is False
        assert (await app.get_run(run.id)).status == "completed"


async def test_a_client_app_without_a_worker_sends_and_reads(make_app, clock: VirtualClock) -> None:  # type: ignore[no-untyped-def]
    worker_app = make_app()
    client = make_app()

    @worker_app.function(trigger="hello")
    async def hello(ctx: tarry.Context) -> str:
        return "hi " + ctx.event.data["who"]

    @client.function(trigger="hello", id="hello")  # a web app imports the same functions
    async def hello_declared(ctx: tarry.Context) -> str:
        raise AssertionError("a client never executes runs")

    async with worker_app:
        await client.start(worker=False)
        try:
            [event_id] = await client.send(tarry.Event("hello", {"who": "ada"}))
            await worker_app.idle(timeout=LIMIT)
            [run] = await client.runs_for_event(event_id)
        finally:
            await client.close()
    assert run.function_id == "hello" and run.output == "hi ada"


async def test_idle_times_out_when_nothing_executes(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app()

    @client.function(trigger="x")
    async def x(ctx: tarry.Context) -> None:
        return None

    await client.start(worker=False)
    try:
        await client.send(tarry.Event("x"))
        with pytest.raises(TimeoutError):
            await client.idle(timeout=0.05)
    finally:
        await client.close()


async def test_an_app_cannot_start_twice_nor_be_used_before_start(app: tarry.Tarry) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await app.send(tarry.Event("x"))
    async with app:
        with pytest.raises(RuntimeError, match="already started"):
            await app.start()


async def test_runs_started_by_sends_never_exceed_the_concurrency(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(concurrency=2)
    running, peak = 0, 0
    release = asyncio.Event()

    @app.function(trigger="job")
    async def job(ctx: tarry.Context) -> None:
        async def body() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1

        await ctx.step.run("work", body)

    async with app:
        for n in range(4):  # each send may claim the runs it starts, as the worker's turn would
            await app.send([tarry.Event("job", {"n": n}), tarry.Event("job", {"n": n + 10})])
        await asyncio.sleep(0.2)
        assert (running, peak) == (2, 2)
        release.set()
        await app.idle(timeout=LIMIT)
        runs = await app.list_runs(function_id="job")
        assert [r.status for r in runs] == [tarry.RunStatus.COMPLETED] * 8
        assert peak == 2


async def test_a_send_cancelled_by_its_caller_leaves_no_run_behind(app: tarry.Tarry) -> None:
    @app.function(trigger="job")
    async def job(ctx: tarry.Context) -> int:
        return int(ctx.event.data["n"])

    async with app:
        for n in range(40):  # cancelled at every point of the send: before, during and after its commit
            send = asyncio.create_task(app.send(tarry.Event("job", {"n": n})))
            for _ in range(n % 8):
                await asyncio.sleep(0)
            send.cancel()
            await asyncio.gather(send, return_exceptions=True)
        await app.idle(timeout=LIMIT)  # a run claimed and never executed would keep it busy
        runs = await app.list_runs(function_id="job", limit=100)
        assert runs and all(r.status == tarry.RunStatus.COMPLETED for r in runs)
