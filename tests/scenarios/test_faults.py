"""Faults and edge cases: a failing store, odd exceptions in user code, step id collisions,
early wake-ups during a backoff, cancel_on on the trigger's own name, sync calls during start."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


def fail_once(monkeypatch: pytest.MonkeyPatch, app: tarry.Tarry, method: str, error: Exception) -> None:
    """The store's ``method`` raises ``error`` the first time it is called, then works."""
    store = app.engine.store
    real = getattr(store, method)
    failures = [error]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, method, flaky)


async def test_a_store_failure_under_a_step_backs_the_run_off_and_it_completes(
    app: tarry.Tarry, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    @app.function(trigger="flaky/store")
    async def flow(ctx: tarry.Context) -> str:
        try:
            await ctx.step.run("one", lambda: calls.append("one") or "ok")
        except Exception as err:  # user code must never see the store's failure
            return "saw " + type(err).__name__
        return "done"

    async with app:
        fail_once(monkeypatch, app, "record_step", tarry.StoreError("disk on fire"))
        run = await start_run(app, tarry.Event("flaky/store"))
        assert run.status == "sleeping", "backed off, not failed, not stuck running"
        await clock.advance("1s")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "done"
    assert calls == ["one", "one"], "the interrupted step ran again: at least once"


async def test_a_store_failure_when_parking_backs_the_run_off(
    app: tarry.Tarry, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.function(trigger="flaky/park")
    async def flow(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1m")
        return "done"

    async with app:
        fail_once(monkeypatch, app, "park", tarry.StoreError("locked"))
        run = await start_run(app, tarry.Event("flaky/park"))
        assert run.status == "sleeping"
        await clock.advance("2m")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == "done"


async def test_a_step_body_that_raises_cancelled_error_is_a_step_failure(app: tarry.Tarry, clock: VirtualClock) -> None:
    attempts: list[int] = []

    async def body() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            other = asyncio.create_task(asyncio.sleep(10))
            asyncio.get_running_loop().call_later(0.01, other.cancel)
            await other  # someone else cancelled what we awaited
        return "second time lucky"

    @app.function(trigger="cancelled/body", retries=2)
    async def flow(ctx: tarry.Context) -> str:
        return await ctx.step.run("fetch", body)

    async with app:
        run = await start_run(app, tarry.Event("cancelled/body"))
        assert run.status == "sleeping"
        [step] = (await app.get_run(run.id)).steps
        assert step.status == "retrying" and step.error["name"] == "CancelledError"
        await clock.advance("10s")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == "second time lucky"


async def test_system_exit_in_a_plain_def_function_fails_the_run_not_the_worker(app: tarry.Tarry) -> None:
    @app.function(trigger="exit")
    def leaver(ctx: tarry.Context) -> None:
        raise SystemExit(3)

    @app.function(trigger="after")
    async def after(ctx: tarry.Context) -> str:
        return "still running"

    async with app:
        run = await start_run(app, tarry.Event("exit"))
        assert run.status == "failed" and run.error["name"] == "SystemExit" and run.error["message"] == "3"
        assert ", in leaver\n" in run.error["traceback"], "a plain def function's error has its traceback too"
        assert (await start_run(app, tarry.Event("after"))).output == "still running"


async def test_a_literal_step_id_never_shares_a_record_with_a_repeat(app: tarry.Tarry) -> None:
    @app.function(trigger="ids")
    async def ids(ctx: tarry.Context) -> list[str]:
        return [
            await ctx.step.run("charge", lambda: "first"),
            await ctx.step.run("charge", lambda: "second"),
            await ctx.step.run("charge:1", lambda: "literal"),
        ]

    async with app:
        run = await start_run(app, tarry.Event("ids"))
        steps = (await app.get_run(run.id)).steps
    assert run.output == ["first", "second", "literal"]
    assert [s.id for s in steps] == ["charge", "charge:1", "charge:1:1"]


async def test_an_early_wake_up_does_not_cut_a_retry_backoff_short(app: tarry.Tarry, clock: VirtualClock) -> None:
    attempts: list[int] = []

    @app.function(trigger="backoff")
    async def backoff(ctx: tarry.Context) -> Any:
        def call() -> str:
            attempts.append(clock.now_ms())
            if len(attempts) == 1:
                raise tarry.RetryAfterError("later", "1h")
            return "ok"

        result, ping = await asyncio.gather(
            ctx.step.run("call", call), ctx.step.wait_for_event("w", event="backoff/ping", timeout="2h")
        )
        return [result, ping is not None]

    async with app:
        run = await start_run(app, tarry.Event("backoff"))
        await clock.advance("1m")
        await app.send(tarry.Event("backoff/ping"))  # wakes the run 59 minutes before its retry
        await app.idle(timeout=LIMIT)
        assert len(attempts) == 1, "the retry must wait for its delay"
        await clock.advance("59m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed", (done.status, done.error, done.steps)
    assert done.output[0] == "ok" and attempts[1] - attempts[0] == 3_600_000


async def test_cancel_on_the_triggers_own_name_cancels_only_older_runs(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="order/updated", cancel_on=[tarry.CancelOn(event="order/updated", match="data.orderId")])
    async def latest_wins(ctx: tarry.Context) -> int:
        await ctx.step.sleep("debounce", "5m")
        return int(ctx.event.data["version"])

    async with app:
        first = await start_run(app, tarry.Event("order/updated", {"orderId": "o1", "version": 1}))
        assert first.status == "sleeping", "a run is not cancelled by its own trigger"
        second = await start_run(app, tarry.Event("order/updated", {"orderId": "o1", "version": 2}))
        assert (await app.get_run(first.id)).status == "cancelled"
        await clock.advance("5m")
        assert (await app.wait_for_run(second.id, timeout=LIMIT)).output == 2


async def test_a_key_only_wait_with_a_long_key_looks_back(app: tarry.Tarry, clock: VirtualClock) -> None:
    key = "k" * 200

    @app.function(trigger="long/start")
    async def long_key(ctx: tarry.Context) -> Any:
        await ctx.step.sleep("s", "1m")
        got = await ctx.step.wait_for_event("w", key=key, timeout="1h")
        return got.data if got else None

    async with app:
        run = await start_run(app, tarry.Event("long/start"))
        await app.notify(key, {"x": 1})
        await clock.advance("1m")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == {"x": 1}


def test_sync_calls_wait_for_an_app_starting_in_another_thread(make_app) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        app = make_app()

        @app.function(trigger="hello")
        async def hello(ctx: tarry.Context) -> str:
            return "hi"

        stop = threading.Event()

        def serve(app: tarry.Tarry = app, stop: threading.Event = stop) -> None:
            async def main() -> None:
                async with app:
                    while not stop.is_set():
                        await asyncio.sleep(0.01)

            asyncio.run(main())

        server = threading.Thread(target=serve)
        server.start()
        try:
            [event_id] = app.send_sync(tarry.Event("hello"))
            app.idle_sync(timeout=LIMIT)
            [run] = app.runs_for_event_sync(event_id)
            assert run.output == "hi"
        finally:
            stop.set()
            server.join(LIMIT)


async def test_bad_payload_and_resume_data_name_the_field(app: tarry.Tarry) -> None:
    errors: list[str] = []

    @app.function(trigger="p")
    async def p(ctx: tarry.Context) -> None:
        try:
            await ctx.step.resume_url("link", payload={"a": {1, 2}})
        except ValueError as err:
            errors.append(str(err))
        await ctx.step.resume_url("ok", payload={"a": 1})

    async with app:
        await start_run(app, tarry.Event("p"))
        with pytest.raises(ValueError, match="invalid data"):
            await app.resume("token", {"a": object()})
    assert errors and errors[0].startswith("invalid payload")


async def test_an_invalid_event_in_a_batch_is_named_by_its_index(running: tarry.Tarry) -> None:
    with pytest.raises(tarry.InvalidEventError, match=r"event \[1\] of the batch: event field 'name'"):
        await running.send([tarry.Event("ok"), {"name": ""}])  # type: ignore[list-item]
