"""Plain def functions with the _sync twins, and sync client calls from other threads."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


async def test_a_plain_def_function_uses_every_sync_twin(app: tarry.Tarry, clock: VirtualClock) -> None:
    threads: list[str] = []
    start = clock.now()

    @app.function(trigger="sync/start")
    def flow(ctx: tarry.Context) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        n = ctx.step.run_sync("one", lambda: 1)
        ctx.step.sleep_sync("pause", "5m")
        ctx.step.sleep_until_sync("until", start + timedelta(minutes=10))
        [sent] = ctx.step.send_event_sync("tell", tarry.Event("sync/told", {"n": n}))
        return {"n": n + 1, "sent": sent}

    @app.function(trigger="sync/told")
    def told(ctx: tarry.Context) -> int:
        return int(ctx.event.data["n"])

    async with app:
        run = await start_run(app, tarry.Event("sync/start"), "flow")
        assert run.status == "sleeping"
        await clock.advance("11m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        [child] = await app.runs_for_event(done.output["sent"])
    assert done.status == "completed" and done.output["n"] == 2
    assert child.output == 1
    assert all(name.startswith("tarry-function") for name in threads), threads
    assert [s.id for s in done.steps] == ["one", "pause", "until", "tell"]


async def test_plain_def_retries_and_step_errors(app: tarry.Tarry, clock: VirtualClock) -> None:
    attempts: list[int] = []

    @app.function(trigger="sync/flaky", retries=1)
    def flaky(ctx: tarry.Context) -> str:
        def call() -> None:
            attempts.append(ctx.attempt)
            raise OSError("disk")

        try:
            ctx.step.run_sync("call", call)
        except tarry.StepError as err:
            return err.message
        return "no error"

    async with app:
        run = await start_run(app, tarry.Event("sync/flaky"))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "disk" and attempts == [0, 1]


async def test_a_sync_twin_inside_an_async_function_is_a_clear_error(app: tarry.Tarry) -> None:
    @app.function(trigger="mixed")
    async def mixed(ctx: tarry.Context) -> None:
        ctx.step.run_sync("x", lambda: 1)

    async with app:
        run = await start_run(app, tarry.Event("mixed"))
    assert run.status == "failed" and "await ctx.step.run" in run.error["message"]


async def test_client_sync_twins_from_another_thread_while_the_app_runs(app: tarry.Tarry) -> None:
    @app.function(trigger="hello")
    async def hello(ctx: tarry.Context) -> str:
        return "hi " + ctx.event.data["who"]

    def web_request() -> tarry.Run:  # e.g. a Flask view in its own thread
        [event_id] = app.send_sync(tarry.Event("hello", {"who": "ada"}))
        app.idle_sync(timeout=LIMIT)
        [run] = app.runs_for_event_sync(event_id)
        assert app.get_run_sync(run.id) is not None
        assert app.list_runs_sync(function_id="hello")[0].id == run.id
        assert app.cancel_run_sync(run.id) is False
        return app.wait_for_run_sync(run.id, timeout=LIMIT)

    async with app:
        run = await asyncio.to_thread(web_request)
    assert run.output == "hi ada"


async def test_a_client_sync_twin_in_the_loop_thread_is_a_clear_error(running: tarry.Tarry) -> None:
    with pytest.raises(RuntimeError, match=r"await app\.send"):
        running.send_sync(tarry.Event("x"))


def test_sync_twins_before_start_open_a_short_lived_client(make_app, clock: VirtualClock) -> None:  # type: ignore[no-untyped-def]
    script = make_app()  # a script that only sends: no worker, nothing to start
    [event_id] = script.send_sync(tarry.Event("from/script", {"x": 1}))
    assert script.runs_for_event_sync(event_id) == []

    worker = make_app()

    @worker.function(trigger="from/script")
    async def handle(ctx: tarry.Context) -> int:
        return int(ctx.event.data["x"])

    async def later() -> None:
        async with worker:
            await worker.idle(timeout=LIMIT)

    asyncio.run(later())
    [run] = script.runs_for_event_sync(event_id)
    assert run.function_id == "handle" and run.output == 1, "a worker routes what a bare client sent"
