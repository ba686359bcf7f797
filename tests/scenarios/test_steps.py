"""Steps through the public API: memoised replay, retries, errors, sleeps, send_event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


async def test_a_finished_step_never_runs_again(app: tarry.Tarry, clock: VirtualClock) -> None:
    calls: list[str] = []

    async def charge(amount: int) -> dict[str, Any]:
        calls.append("charge")
        return {"charged": amount}

    @app.function(trigger="shop/order.placed")
    async def order(ctx: tarry.Context) -> Any:
        receipt = await ctx.step.run("charge", charge, ctx.event.data["amount"])
        await ctx.step.sleep("pause", "1h")
        await ctx.step.sleep("pause-again", "1h")
        return receipt

    async with app:
        run = await start_run(app, tarry.Event("shop/order.placed", {"amount": 5}))
        await clock.advance("3h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == {"charged": 5}
    assert calls == ["charge"]
    assert [(s.id, s.kind, s.status.value, s.attempts) for s in done.steps] == [
        ("charge", "run", "completed", 1),
        ("pause", "sleep", "completed", 0),
        ("pause-again", "sleep", "completed", 0),
    ]


async def test_sync_and_async_step_bodies_and_their_arguments(app: tarry.Tarry) -> None:
    def add(a: int, b: int = 0) -> int:
        return a + b

    async def mul(a: int, *, b: int) -> int:
        return a * b

    @app.function(trigger="calc")
    async def calc(ctx: tarry.Context) -> list[int]:
        return [await ctx.step.run("add", add, 2, b=3), await ctx.step.run("mul", mul, 2, b=3),
                await ctx.step.run("lambda", lambda: 7)]  # fmt: skip

    async with app:
        run = await start_run(app, tarry.Event("calc"))
    assert run.status == "completed" and run.output == [5, 6, 7]


async def test_a_repeated_step_id_in_a_loop_is_a_separate_step(app: tarry.Tarry, clock: VirtualClock) -> None:
    seen: list[int] = []

    @app.function(trigger="loop")
    async def looping(ctx: tarry.Context) -> int:
        total = 0
        for i in range(3):
            total += await ctx.step.run("add", lambda i=i: seen.append(i) or i)
            await ctx.step.sleep("tick", "1m")
        return total

    async with app:
        run = await start_run(app, tarry.Event("loop"))
        await clock.advance("5m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == 3 and seen == [0, 1, 2]
    assert [s.id for s in done.steps] == ["add", "tick", "add:1", "tick:1", "add:2", "tick:2"]


async def test_a_result_that_is_not_json_fails_the_step_naming_it(app: tarry.Tarry) -> None:
    calls = []

    @app.function(trigger="bad")
    async def bad(ctx: tarry.Context) -> Any:
        return await ctx.step.run("make-set", lambda: calls.append(1) or {1, 2})

    async with app:
        run = await start_run(app, tarry.Event("bad"))
        [step] = (await app.get_run(run.id)).steps
    assert run.status == "failed"
    assert "'make-set'" in run.error["message"] and "not JSON-serialisable" in run.error["message"]
    assert calls == [1], "a non-JSON result must not be retried"
    assert step.status == "failed" and step.error["name"] == "TypeError"


async def test_a_function_result_that_is_not_json_fails_the_run(app: tarry.Tarry) -> None:
    @app.function(trigger="bad")
    async def bad(ctx: tarry.Context) -> Any:
        return object()

    async with app:
        run = await start_run(app, tarry.Event("bad"))
    assert run.status == "failed" and "not JSON-serialisable" in run.error["message"]


async def test_retries_back_off_on_the_clock_then_succeed(app: tarry.Tarry, clock: VirtualClock) -> None:
    attempts: list[int] = []

    @app.function(trigger="flaky", retries=3)
    async def flaky(ctx: tarry.Context) -> str:
        def call() -> str:
            attempts.append(ctx.attempt)
            if len(attempts) < 3:
                raise ConnectionError("upstream down")
            return "ok"

        return await ctx.step.run("call", call)

    async with app:
        run = await start_run(app, tarry.Event("flaky"))
        assert run.status == "sleeping", "a retry's backoff is a sleep"
        assert attempts == [0]
        [step] = (await app.get_run(run.id)).steps
        assert step.status == "retrying" and step.attempts == 1 and step.error["message"] == "upstream down"
        await clock.advance("10m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "ok"
    assert attempts == [0, 1, 2]
    assert done.steps[0].attempts == 3 and done.steps[0].error is None


async def test_retries_exhausted_raise_step_error_which_fails_the_run(app: tarry.Tarry, clock: VirtualClock) -> None:
    attempts = []

    @app.function(trigger="down", retries=2)
    async def down(ctx: tarry.Context) -> None:
        await ctx.step.run("call", lambda: attempts.append(1) or 1 / 0)

    async with app:
        run = await start_run(app, tarry.Event("down"))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert len(attempts) == 3
    assert done.status == "failed"
    assert done.error["name"] == "StepError" and "division by zero" in done.error["message"]
    assert done.steps[0].status == "failed" and done.steps[0].attempts == 3


async def test_the_function_may_catch_step_error(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="down", retries=0)
    async def down(ctx: tarry.Context) -> dict[str, str]:
        try:
            await ctx.step.run("call", lambda: int("x"))
        except tarry.StepError as err:
            return {"name": err.name, "message": err.message}
        return {}

    async with app:
        run = await start_run(app, tarry.Event("down"))
        await clock.advance("1s")  # replays after the catch are deterministic too
    assert run.status == "completed"
    assert run.output == {"name": "ValueError", "message": "invalid literal for int() with base 10: 'x'"}


async def test_non_retriable_error_stops_at_once(app: tarry.Tarry) -> None:
    attempts = []

    @app.function(trigger="nope", retries=5)
    async def nope(ctx: tarry.Context) -> None:
        def call() -> None:
            attempts.append(1)
            raise tarry.NonRetriableError("card declined")

        await ctx.step.run("charge", call)

    async with app:
        run = await start_run(app, tarry.Event("nope"))
    assert attempts == [1]
    assert run.status == "failed" and "card declined" in run.error["message"]


async def test_retry_after_error_waits_the_given_delay(app: tarry.Tarry, clock: VirtualClock) -> None:
    attempts = []

    @app.function(trigger="limited")
    async def limited(ctx: tarry.Context) -> int:
        def call() -> int:
            attempts.append(1)
            if len(attempts) == 1:
                raise tarry.RetryAfterError("rate limited", "2h")
            return len(attempts)

        return await ctx.step.run("call", call)

    async with app:
        run = await start_run(app, tarry.Event("limited"))
        await clock.advance("119m")
        assert attempts == [1] and (await app.get_run(run.id)).status == "sleeping"
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == 2


async def test_an_error_outside_a_step_fails_the_run_without_retries(app: tarry.Tarry) -> None:
    calls = []

    @app.function(trigger="oops", retries=4)
    async def oops(ctx: tarry.Context) -> None:
        calls.append(1)
        raise KeyError("missing")

    async with app:
        run = await start_run(app, tarry.Event("oops"))
    assert calls == [1]
    assert run.status == "failed" and run.error["name"] == "KeyError" and run.error["message"] == "'missing'"
    assert set(run.error) == {"name", "message", "traceback"}
    assert ", in oops\n" in run.error["traceback"] and run.error["traceback"].endswith("KeyError: 'missing'\n")


async def test_a_bad_duration_is_a_value_error_the_function_may_catch(app: tarry.Tarry) -> None:
    @app.function(trigger="d")
    async def durations(ctx: tarry.Context) -> list[str]:
        errors = []
        for text in ("1 month", "2 years", "-5s", "", "abc", "400d"):
            try:
                await ctx.step.sleep("s", text)
            except ValueError as err:
                errors.append(str(err))
        return errors

    async with app:
        run = await start_run(app, tarry.Event("d"))
        assert (await app.get_run(run.id)).steps == [], "nothing of a refused sleep is stored"
    assert run.status == "completed" and len(run.output) == 6
    assert "'1 month'" in run.output[0] and "'abc'" in run.output[4]


async def test_sleep_until_an_aware_datetime_or_iso_text(app: tarry.Tarry, clock: VirtualClock) -> None:
    start = clock.now()

    @app.function(trigger="until")
    async def until(ctx: tarry.Context) -> str:
        await ctx.step.sleep_until("first", start + timedelta(hours=1))
        await ctx.step.sleep_until("second", (start + timedelta(hours=2)).isoformat())
        await ctx.step.sleep_until("past", start - timedelta(days=1))
        return "done"

    async with app:
        run = await start_run(app, tarry.Event("until"))
        await clock.advance("59m")
        assert (await app.get_run(run.id)).status == "sleeping"
        await clock.advance("1h1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "done"


async def test_sleep_until_a_naive_datetime_is_refused(app: tarry.Tarry) -> None:
    @app.function(trigger="naive")
    async def naive(ctx: tarry.Context) -> None:
        await ctx.step.sleep_until("when", datetime(2030, 1, 1))

    async with app:
        run = await start_run(app, tarry.Event("naive"))
        assert (await app.get_run(run.id)).steps == []
    assert run.status == "failed" and run.error["name"] == "ValueError"
    assert "naive" in run.error["message"] and "timezone" in run.error["message"]


async def test_the_clock_reads_each_sleeps_due_time_while_it_fires(app: tarry.Tarry, clock: VirtualClock) -> None:
    start = clock.now_ms()
    seen: list[int] = []

    @app.function(trigger="t")
    async def timeline(ctx: tarry.Context) -> None:
        await ctx.step.sleep("a", "1h")
        await ctx.step.run("at-a", lambda: seen.append(clock.now_ms() - start))
        await ctx.step.sleep("b", "30m")  # created while advancing: due before the end, fires too
        await ctx.step.run("at-b", lambda: seen.append(clock.now_ms() - start))

    async with app:
        run = await start_run(app, tarry.Event("t"))
        await clock.advance("2h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed"
    assert seen == [3_600_000, 5_400_000]
    assert clock.now_ms() - start == 7_200_000


async def test_send_event_sends_once_across_replays(app: tarry.Tarry, clock: VirtualClock) -> None:
    received: list[str] = []

    @app.function(trigger="parent")
    async def parent(ctx: tarry.Context) -> list[str]:
        ids = await ctx.step.send_event("notify", [tarry.Event("child", {"n": 1}), tarry.Event("child", {"n": 2})])
        await ctx.step.sleep("later", "1d")
        return ids

    @app.function(trigger="child")
    async def child(ctx: tarry.Context) -> None:
        received.append(ctx.event.id or "")

    async with app:
        run = await start_run(app, tarry.Event("parent"), "parent")
        await clock.advance("2d")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        assert len(await app.list_runs(function_id="child")) == 2
    assert len(done.output) == 2
    assert sorted(received) == sorted(done.output)


async def test_gathered_steps_run_concurrently_and_are_recorded_each(app: tarry.Tarry, clock: VirtualClock) -> None:
    both_running = asyncio.Event()
    started: list[str] = []

    async def work(name: str) -> str:
        started.append(name)
        if len(started) == 2:
            both_running.set()
        await asyncio.wait_for(both_running.wait(), LIMIT)
        return name.upper()

    @app.function(trigger="fan")
    async def fan(ctx: tarry.Context) -> list[Any]:
        first = await asyncio.gather(ctx.step.run("a", work, "a"), ctx.step.run("b", work, "b"))
        await asyncio.gather(ctx.step.sleep("short", "1h"), ctx.step.sleep("long", "2h"))
        return list(first)

    async with app:
        run = await start_run(app, tarry.Event("fan"))
        assert run.status == "sleeping"
        await clock.advance("1h")
        assert (await app.get_run(run.id)).status == "sleeping", "only one of the two sleeps ended"
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == ["A", "B"]
    assert sorted(s.id for s in done.steps) == ["a", "b", "long", "short"]


async def test_the_park_signal_is_not_an_exception_user_code_can_swallow(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="greedy")
    async def greedy(ctx: tarry.Context) -> str:
        try:
            await ctx.step.sleep("nap", "1h")
        except Exception:
            return "swallowed"
        return "slept"

    async with app:
        run = await start_run(app, tarry.Event("greedy"))
        assert run.status == "sleeping"
        await clock.advance("1h")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == "slept"


async def test_ctx_fields(app: tarry.Tarry) -> None:
    @app.function(trigger="who", id="who-am-i")
    async def who(ctx: tarry.Context) -> dict[str, Any]:
        return {"run_id": ctx.run_id, "function_id": ctx.function_id, "event": ctx.event.name, "attempt": ctx.attempt}

    async with app:
        [event_id] = await app.send(tarry.Event("who"))
        await app.idle(timeout=LIMIT)
        [run] = await app.runs_for_event(event_id)
    assert run.output == {"run_id": run.id, "function_id": "who-am-i", "event": "who", "attempt": 0}
    assert run.event.id == event_id and isinstance(run.event.ts, int)


async def test_the_logger_is_quiet_while_replaying(app: tarry.Tarry, clock: VirtualClock,
                                                   caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    @app.function(trigger="log")
    async def logged(ctx: tarry.Context) -> None:
        ctx.logger.info("before the sleep")
        await ctx.step.sleep("nap", "1h")
        ctx.logger.info("after the sleep")

    caplog.set_level("INFO", logger="tarry")
    async with app:
        run = await start_run(app, tarry.Event("log"))
        await clock.advance("1h")
        await app.wait_for_run(run.id, timeout=LIMIT)
    lines = [r.getMessage() for r in caplog.records if r.name == "tarry.function.logged"]
    assert lines == ["before the sleep", "after the sleep"]


async def test_a_step_id_must_be_a_non_empty_string(app: tarry.Tarry) -> None:
    @app.function(trigger="ids")
    async def ids(ctx: tarry.Context) -> None:
        await ctx.step.run("", lambda: 1)

    async with app:
        run = await start_run(app, tarry.Event("ids"))
    assert run.status == "failed" and "invalid step id" in run.error["message"]


async def test_a_sleep_of_zero_completes_at_once(app: tarry.Tarry) -> None:
    @app.function(trigger="zero")
    async def zero(ctx: tarry.Context) -> str:
        await ctx.step.sleep("none", 0)
        return "done"

    async with app:
        run = await start_run(app, tarry.Event("zero"))
        [step] = (await app.get_run(run.id)).steps
    assert run.status == "completed" and run.output == "done"
    assert (step.id, step.kind, step.status) == ("none", "sleep", "completed")


async def test_sleeps_in_the_virtual_clock_cost_no_real_time(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="long")
    async def long(ctx: tarry.Context) -> None:
        await ctx.step.sleep("year", timedelta(days=365))

    loop = asyncio.get_running_loop()
    async with app:
        run = await start_run(app, tarry.Event("long"))
        began = loop.time()
        await clock.advance(timedelta(days=365))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed" and loop.time() - began < LIMIT
    assert done.ended_at is not None and done.ended_at - done.created_at == timedelta(days=365)
    assert done.created_at.tzinfo is UTC or done.created_at.utcoffset() == timedelta(0)


async def test_a_step_id_with_a_nul_character_fails_the_run_alike_on_both_stores(app: tarry.Tarry) -> None:
    @app.function(trigger="ids")
    async def ids(ctx: tarry.Context) -> None:
        await ctx.step.run("a\x00b", lambda: 1)

    async with app:
        run = await start_run(app, tarry.Event("ids"))
    assert run.status == "failed" and "invalid step id" in run.error["message"] and "NUL" in run.error["message"]


def test_a_function_id_with_a_nul_character_is_refused(app: tarry.Tarry) -> None:
    with pytest.raises(ValueError, match=r"invalid function id.*NUL"):

        @app.function(trigger="ids", id="a\x00b")
        async def ids(ctx: tarry.Context) -> None: ...

    assert app.functions == []
