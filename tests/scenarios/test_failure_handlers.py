"""Failure handlers (API §10): ``on_failure=handler`` runs once for each failed run of a function, as a run of
its own (``"<id>-failure"``) started by the failed run's ``tarry/function.failed`` event. On both stores,
with a VirtualClock, through the public API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run
from tests.scenarios.gates import Gate


def fails(ctx: tarry.Context) -> None:
    raise RuntimeError("card declined")


async def handled(app: tarry.Tarry, failed: tarry.Run, function_id: str = "charge-failure") -> tarry.Run:
    """The one run of the failure handler, finished, and check it is the handler of ``failed``."""
    await app.idle(timeout=LIMIT)
    runs = await app.list_runs(function_id=function_id)
    assert len(runs) == 1, runs
    run = await app.wait_for_run(runs[0].id, timeout=LIMIT)
    assert run.event.name == "tarry/function.failed"
    assert run.event.data["run_id"] == failed.id and run.event.data["function_id"] == failed.function_id
    return run


def record_failure(seen: list[dict[str, Any]]) -> Callable[[tarry.Context], Any]:
    async def on_charge_failure(ctx: tarry.Context) -> Any:
        seen.append({"function_id": ctx.function_id, "event": ctx.event, "events": ctx.events})
        return {"notified": ctx.event.data["run_id"]}

    return on_charge_failure


# -- each cause of a failure ----------------------------------------------------------------


async def test_a_step_out_of_retries_runs_the_handler_once_with_the_failed_event(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    seen: list[dict[str, Any]] = []

    @app.function(trigger="shop/charge", retries=1, on_failure=record_failure(seen))
    async def charge(ctx: tarry.Context) -> None:
        await ctx.step.run("charge-card", fails, ctx)

    async with app:
        [event_id] = await app.send(tarry.Event("shop/charge", {"order": "o1"}, key="k"))
        await app.idle(timeout=LIMIT)
        assert seen == [], "the step backs off before its retry"
        await clock.advance("1h")
        [failed] = await app.runs_for_event(event_id)
        assert failed.status == tarry.RunStatus.FAILED
        run = await handled(app, failed)
        assert run.status == tarry.RunStatus.COMPLETED and run.output == {"notified": failed.id}
        [one] = seen
        assert one["function_id"] == "charge-failure"
        event = one["event"]
        assert isinstance(event, tarry.Event) and event.name == "tarry/function.failed"
        assert one["events"] == [event]
        assert event.data["error"]["name"] == "StepError" and "card declined" in event.data["error"]["message"]
        assert event.data["error"]["message"] == failed.error["message"]  # type: ignore[index]
        assert event.data["event"] == {"name": "shop/charge", "data": {"order": "o1"}, "id": event_id,
                                       "ts": failed.event.ts}  # fmt: skip
        assert "charge-failure" in app.functions


async def test_an_exception_outside_the_steps_runs_the_handler(app: tarry.Tarry) -> None:
    seen: list[dict[str, Any]] = []

    @app.function(trigger="shop/charge", on_failure=record_failure(seen))
    async def charge(ctx: tarry.Context) -> None:
        await ctx.step.run("ok", lambda: 1)
        raise KeyError("no such order")

    async with app:
        failed = await start_run(app, tarry.Event("shop/charge"), "charge")
        assert failed.status == tarry.RunStatus.FAILED
        run = await handled(app, failed)
        assert run.event.data["error"]["name"] == "KeyError"
        assert "no such order" in run.event.data["error"]["message"]


async def test_a_wait_that_times_out_with_fail_runs_the_handler(app: tarry.Tarry, clock: VirtualClock) -> None:
    seen: list[dict[str, Any]] = []

    @app.function(trigger="shop/charge", on_failure=record_failure(seen))
    async def charge(ctx: tarry.Context) -> None:
        await ctx.step.wait_for_event("paid", event="shop/paid", timeout="1h", on_timeout="fail")

    async with app:
        waiting = await start_run(app, tarry.Event("shop/charge"), "charge")
        assert waiting.status == tarry.RunStatus.WAITING and seen == []
        await clock.advance("1h")
        failed = await app.wait_for_run(waiting.id, timeout=LIMIT)
        assert failed.status == tarry.RunStatus.FAILED
        run = await handled(app, failed)
        assert run.event.data["error"]["name"] == "WaitTimeoutError"
        assert len(seen) == 1


async def test_a_return_value_that_cannot_be_stored_runs_the_handler(app: tarry.Tarry) -> None:
    seen: list[dict[str, Any]] = []

    @app.function(trigger="shop/charge", on_failure=record_failure(seen))
    async def charge(ctx: tarry.Context) -> Any:
        return {"when": object()}

    async with app:
        failed = await start_run(app, tarry.Event("shop/charge"), "charge")
        assert failed.status == tarry.RunStatus.FAILED
        await handled(app, failed)


async def test_a_completed_run_runs_no_handler(app: tarry.Tarry) -> None:
    seen: list[dict[str, Any]] = []

    @app.function(trigger="shop/charge", on_failure=record_failure(seen))
    async def charge(ctx: tarry.Context) -> str:
        return "ok"

    async with app:
        run = await start_run(app, tarry.Event("shop/charge"), "charge")
        assert run.status == tarry.RunStatus.COMPLETED
        await app.idle(timeout=LIMIT)
        assert seen == [] and await app.list_runs(function_id="charge-failure") == []


# -- the handler ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_the_handler_may_be_sync_or_async_and_has_steps(app: tarry.Tarry, kind: str) -> None:
    notified: list[str] = []

    async def on_failure_async(ctx: tarry.Context) -> str:
        return await ctx.step.run("notify", lambda: notified.append(ctx.event.data["run_id"]) or "sent")

    def on_failure_sync(ctx: tarry.Context) -> str:
        return ctx.step.run_sync("notify", lambda: notified.append(ctx.event.data["run_id"]) or "sent")

    handler = on_failure_async if kind == "async" else on_failure_sync

    @app.function(trigger="shop/charge", on_failure=handler)
    def charge(ctx: tarry.Context) -> None:
        raise RuntimeError("boom")

    async with app:
        failed = await start_run(app, tarry.Event("shop/charge"), "charge")
        run = await handled(app, failed)
        assert run.output == "sent" and notified == [failed.id]
        assert [(s.id, s.status) for s in (await app.get_run(run.id)).steps] == [("notify", "completed")]  # type: ignore[union-attr]


@pytest.mark.parametrize("retries", [0, 2])
async def test_the_handlers_steps_retry_as_the_functions_own(
    app: tarry.Tarry, clock: VirtualClock, retries: int
) -> None:
    tries: list[int] = []

    def flaky() -> str:
        tries.append(len(tries))
        if len(tries) <= 2:
            raise ConnectionError("mail server down")
        return "sent"

    async def on_failure(ctx: tarry.Context) -> str:
        return await ctx.step.run("notify", flaky)

    @app.function(trigger="shop/charge", retries=retries, on_failure=on_failure)
    async def charge(ctx: tarry.Context) -> None:
        raise RuntimeError("boom")

    async with app:
        failed = await start_run(app, tarry.Event("shop/charge"), "charge")
        await app.idle(timeout=LIMIT)
        await clock.advance("1h")  # every backoff of the handler's retries
        [run] = await app.list_runs(function_id="charge-failure")
        run = await app.wait_for_run(run.id, timeout=LIMIT)
        [step] = run.steps
        if retries == 0:
            assert run.status == tarry.RunStatus.FAILED and step.attempts == 1 and len(tries) == 1
        else:
            assert run.status == tarry.RunStatus.COMPLETED and step.attempts == 3 and len(tries) == 3
        assert run.event.data["run_id"] == failed.id


async def test_none_of_the_functions_flow_control_applies_to_the_handler(app: tarry.Tarry) -> None:
    """A run of the function holds its only concurrency slot and its singleton, and its rate limit is spent;
    its cancel_on event comes: the handler of another failed run of it runs all the same, to the end."""
    gate = Gate()
    handler_gate = Gate()

    async def on_failure(ctx: tarry.Context) -> str:
        return await ctx.step.run("notify", handler_gate.hold, "notify")

    @app.function(trigger="shop/charge", on_failure=on_failure, concurrency=tarry.Concurrency(limit=1),
                  rate_limit=tarry.RateLimit(limit=2, period="1h"), singleton=tarry.Singleton(key="event.data.n"),
                  cancel_on=[tarry.CancelOn(event="shop/stop")], timeouts=tarry.Timeouts(start="1m"))  # fmt: skip
    async def charge(ctx: tarry.Context) -> None:
        if ctx.event.data["n"] == 1:
            await ctx.step.run("work", gate.hold, "held")
        raise RuntimeError("boom")

    async with app:
        await app.send(tarry.Event("shop/charge", {"n": 2}))
        await app.send(tarry.Event("shop/charge", {"n": 1}))
        await gate.reached(1)  # one run of charge executes, and holds the only slot
        await handler_gate.reached(1)  # the handler of the other executes beside it
        [handler] = await app.list_runs(function_id="charge-failure")
        await app.send(tarry.Event("shop/stop"))
        handler_gate.open()
        assert (await app.wait_for_run(handler.id, timeout=LIMIT)).status == tarry.RunStatus.COMPLETED
        gate.open()
        await app.idle(timeout=LIMIT)
        statuses = sorted(r.status.value for r in await app.list_runs(function_id="charge"))
        assert statuses in (["cancelled", "failed"], ["failed", "failed"]), statuses


async def test_cancels_never_run_the_handler(app: tarry.Tarry) -> None:
    seen: list[dict[str, Any]] = []

    @app.function(trigger="shop/charge", on_failure=record_failure(seen), cancel_on=[tarry.CancelOn(event="shop/stop")])
    async def charge(ctx: tarry.Context) -> None:
        await ctx.step.sleep("nap", "2h")

    async with app:
        by_call = await start_run(app, tarry.Event("shop/charge"), "charge")
        assert await app.cancel_run(by_call.id)
        by_event = await start_run(app, tarry.Event("shop/charge"), "charge")
        await app.send(tarry.Event("shop/stop"))
        await app.idle(timeout=LIMIT)
        for run in (by_call, by_event):
            assert (await app.wait_for_run(run.id, timeout=LIMIT)).status == tarry.RunStatus.CANCELLED
        assert seen == [] and await app.list_runs(function_id="charge-failure") == []


async def test_cancel_reasons_of_each_kind_run_no_handler(app: tarry.Tarry, clock: VirtualClock) -> None:
    seen: list[dict[str, Any]] = []

    @app.function(trigger="shop/charge", on_failure=record_failure(seen), timeouts=tarry.Timeouts(finish="1h"))
    async def charge(ctx: tarry.Context) -> None:
        if ctx.event.data["how"] == "wait":
            await ctx.step.wait_for_event("w", event="shop/never", timeout="1m", on_timeout="cancel")
        await ctx.step.sleep("nap", "2h")

    async with app:
        wait = await start_run(app, tarry.Event("shop/charge", {"how": "wait"}), "charge")
        sleep = await start_run(app, tarry.Event("shop/charge", {"how": "sleep"}), "charge")
        await clock.advance("3h")
        for run in (wait, sleep):
            done = await app.wait_for_run(run.id, timeout=LIMIT)
            assert done.status == tarry.RunStatus.CANCELLED, done
        assert seen == [] and await app.list_runs(function_id="charge-failure") == []


async def test_a_failing_handler_triggers_nothing_more(app: tarry.Tarry) -> None:
    calls: list[str] = []

    def on_failure(ctx: tarry.Context) -> None:
        calls.append(ctx.event.data["function_id"])
        raise RuntimeError("the handler broke too")

    @app.function(trigger="shop/charge", on_failure=on_failure)
    async def charge(ctx: tarry.Context) -> None:
        raise RuntimeError("boom")

    @app.function(trigger="tarry/function.failed")
    async def every_failure(ctx: tarry.Context) -> str:
        return str(ctx.event.data["function_id"])

    async with app:
        failed = await start_run(app, tarry.Event("shop/charge"), "charge")
        run = await handled(app, failed)
        assert run.status == tarry.RunStatus.FAILED
        await app.idle(timeout=LIMIT)
        assert calls == ["charge"], "the handler ran once, for the function's run only"
        assert sorted(r.output for r in await app.list_runs(function_id="every-failure")) == ["charge",
                                                                                              "charge-failure"]  # fmt: skip
        assert sorted(app.functions) == ["charge", "charge-failure", "every-failure"]


async def test_each_failed_run_runs_the_handler_once(app: tarry.Tarry) -> None:
    handled_runs: list[str] = []

    async def on_failure(ctx: tarry.Context) -> None:
        handled_runs.append(ctx.event.data["run_id"])

    @app.function(trigger="shop/charge", on_failure=on_failure)
    async def charge(ctx: tarry.Context) -> None:
        raise RuntimeError(f"boom {ctx.event.data['n']}")

    @app.function(trigger="shop/charge")
    async def other(ctx: tarry.Context) -> None:
        raise RuntimeError("not handled: no handler of its own")

    async with app:
        ids = await app.send([tarry.Event("shop/charge", {"n": n}) for n in range(5)])
        await app.idle(timeout=LIMIT)
        runs = [r for i in ids for r in await app.runs_for_event(i)]
        failed = sorted(r.id for r in runs if r.function_id == "charge")
        assert sorted(handled_runs) == failed and len(failed) == 5


async def test_a_failed_rerun_runs_the_handler_again(app: tarry.Tarry, clock: VirtualClock) -> None:
    handled_runs: list[str] = []

    async def on_failure(ctx: tarry.Context) -> None:
        handled_runs.append(ctx.event.data["run_id"])

    @app.function(trigger="shop/charge", on_failure=on_failure)
    async def charge(ctx: tarry.Context) -> None:
        await ctx.step.run("ok", lambda: 1)
        raise RuntimeError("boom")

    async with app:
        failed = await start_run(app, tarry.Event("shop/charge"), "charge")
        rerun = await app.wait_for_run(await app.rerun(failed.id), timeout=LIMIT)
        await clock.advance("1s")  # the bulk rerun below takes the runs created from now on
        from_step = await app.wait_for_run(await app.rerun(failed.id, from_step="ok"), timeout=LIMIT)
        [bulk] = await app.rerun_runs(function_id="charge", created_after=from_step.created_at)
        bulk_run = await app.wait_for_run(bulk, timeout=LIMIT)
        await app.idle(timeout=LIMIT)
        assert {r.status for r in (rerun, from_step, bulk_run)} == {tarry.RunStatus.FAILED}
        assert rerun.rerun_of == failed.id and bulk_run.rerun_of == from_step.id
        assert handled_runs == [failed.id, rerun.id, from_step.id, bulk_run.id], "once for each failed run"
        handlers = await app.list_runs(function_id="charge-failure")
        assert len(handlers) == 4 and {h.status for h in handlers} == {tarry.RunStatus.COMPLETED}


# -- bad input at decoration -----------------------------------------------------------------


async def noop(ctx: tarry.Context) -> None:
    return None


def test_an_id_that_collides_with_an_existing_function_is_refused(app: tarry.Tarry) -> None:
    app.function(trigger="a", id="charge-failure")(noop)
    with pytest.raises(ValueError, match="duplicate function id 'charge-failure'"):
        app.function(trigger="a", id="charge", on_failure=noop)(noop)
    assert app.functions == ["charge-failure"], "nothing registered: not even the function"


def test_a_function_that_collides_with_a_failure_handler_is_refused(app: tarry.Tarry) -> None:
    app.function(trigger="a", id="charge", on_failure=noop)(noop)
    with pytest.raises(ValueError, match="duplicate function id 'charge-failure'"):
        app.function(trigger="a", id="charge-failure")(noop)
    assert app.functions == ["charge", "charge-failure"]


@pytest.mark.parametrize("handler", ["notify", 42, tarry.Event("x")], ids=["a-string", "an-int", "an-event"])
def test_a_handler_that_is_not_callable_is_refused(app: tarry.Tarry, handler: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid on_failure .* a function"):
        app.function(trigger="a", id="charge", on_failure=handler)(noop)
    assert app.functions == []
