"""Reruns (API §10): ``app.rerun(run_id, from_step=None)`` — a new run of a finished run's function with the
same trigger and events, ``Run.rerun_of``, the steps kept before ``from_step`` and what they consumed, which
options apply to a rerun and which do not, and each refusal with nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run
from tests.scenarios.gates import Gate, eventually


class Broken:
    """A step body that fails (without retries) while ``broken``, counting its calls."""

    def __init__(self, result: Any = "ok") -> None:
        self.broken = True
        self.calls = 0
        self.result = result

    def __call__(self) -> Any:
        self.calls += 1
        if self.broken:
            raise tarry.NonRetriableError("still broken")
        return self.result


class Counter:
    def __init__(self, result: Any) -> None:
        self.calls = 0
        self.result = result

    def __call__(self) -> Any:
        self.calls += 1
        return self.result


# -- what a rerun is --------------------------------------------------------


async def test_a_rerun_of_a_completed_run_runs_the_function_again_with_the_same_trigger(app: tarry.Tarry) -> None:
    seen: list[tuple[str, str]] = []

    @app.function(trigger="shop/order.paid")
    async def receipt(ctx: tarry.Context) -> str:
        seen.append((ctx.run_id, ctx.event.id or ""))
        return str(await ctx.step.run("send", lambda: f"sent {ctx.event.data['order']}"))

    async with app:
        run = await start_run(app, tarry.Event("shop/order.paid", {"order": "o1"}))
        again = await app.rerun(run.id)
        done = await app.wait_for_run(again, timeout=LIMIT)
    assert again != run.id
    assert done.status == "completed" and done.output == "sent o1" and done.rerun_of == run.id
    assert done.function_id == "receipt" and done.event == run.event
    assert run.rerun_of is None
    assert seen == [(run.id, run.event.id), (again, run.event.id)]
    assert [s.id for s in done.steps] == ["send"], "no step is kept without from_step"


async def test_a_failed_run_and_a_cancelled_run_can_be_rerun(app: tarry.Tarry) -> None:
    ship = Broken("shipped")

    @app.function(trigger="shop/order.paid")
    async def fulfil(ctx: tarry.Context) -> Any:
        if ctx.event.data.get("wait"):
            await ctx.step.wait_for_event("never", event="shop/never", timeout="1h")
        return await ctx.step.run("ship", ship)

    async with app:
        failed = await start_run(app, tarry.Event("shop/order.paid", {}))
        assert (await app.wait_for_run(failed.id, timeout=LIMIT)).status == "failed"
        waiting = await start_run(app, tarry.Event("shop/order.paid", {"wait": True}))
        assert await app.cancel_run(waiting.id)
        assert (await app.wait_for_run(waiting.id, timeout=LIMIT)).status == "cancelled"
        ship.broken = False
        rerun_failed = await app.wait_for_run(await app.rerun(failed.id), timeout=LIMIT)
        assert rerun_failed.status == "completed" and rerun_failed.output == "shipped"
        rerun_cancelled = await app.rerun(waiting.id)
        await app.idle(timeout=LIMIT)
        again = await app.get_run(rerun_cancelled)
    assert again is not None and again.status == "waiting" and again.rerun_of == waiting.id
    assert [(s.id, s.status) for s in again.steps] == [("never", "waiting")], "the cancelled wait runs anew"


async def test_a_rerun_of_a_rerun_names_the_run_it_reruns(app: tarry.Tarry) -> None:
    @app.function(trigger="job/go")
    async def job(ctx: tarry.Context) -> str:
        return ctx.run_id

    async with app:
        first = await start_run(app, tarry.Event("job/go"))
        second = await app.rerun(first.id)
        await app.wait_for_run(second, timeout=LIMIT)
        third = await app.rerun(second)
        done = await app.wait_for_run(third, timeout=LIMIT)
    assert done.rerun_of == second and done.output == third


async def test_runs_for_event_returns_the_reruns_of_the_runs_it_started(app: tarry.Tarry) -> None:
    @app.function(trigger="job/go")
    async def job(ctx: tarry.Context) -> None:
        return None

    @app.function(trigger="job/go")
    async def other(ctx: tarry.Context) -> None:
        return None

    async with app:
        [event_id] = await app.send(tarry.Event("job/go"))
        await app.idle(timeout=LIMIT)
        started = await app.runs_for_event(event_id)
        original = next(r for r in started if r.function_id == "job")
        first = await app.rerun(original.id)
        second = await app.rerun(original.id)
        await app.idle(timeout=LIMIT)
        runs = await app.runs_for_event(event_id)
    assert [r.id for r in runs] == sorted([r.id for r in started] + [first, second])
    assert {r.id: r.rerun_of for r in runs if r.rerun_of} == {first: original.id, second: original.id}
    assert all(r.status == "completed" for r in runs)


async def test_the_sync_twin_reruns_from_another_thread(app: tarry.Tarry) -> None:
    @app.function(trigger="job/go")
    def job(ctx: tarry.Context) -> str:
        return str(ctx.step.run_sync("one", lambda: "done"))

    async with app:
        run = await start_run(app, tarry.Event("job/go"))
        again = await asyncio.to_thread(app.rerun_sync, run.id, from_step="one")
        done = await app.wait_for_run(again, timeout=LIMIT)
    assert done.output == "done" and done.rerun_of == run.id


# -- from_step --------------------------------------------------------------


async def test_from_step_keeps_the_steps_before_it_and_runs_it_and_the_later_ones_anew(app: tarry.Tarry) -> None:
    charge, pack, ship, notify = Counter("ch_1"), Counter("box"), Broken("shipped"), Counter("told")

    @app.function(trigger="shop/order.paid")
    async def fulfil(ctx: tarry.Context) -> list[Any]:
        return [await ctx.step.run("charge", charge), await ctx.step.run("pack", pack),
                await ctx.step.run("ship", ship), await ctx.step.run("notify", notify)]  # fmt: skip

    async with app:
        run = await start_run(app, tarry.Event("shop/order.paid", {}))
        failed = await app.wait_for_run(run.id, timeout=LIMIT)
        assert failed.status == "failed" and [s.id for s in failed.steps] == ["charge", "pack", "ship"]
        ship.broken = False
        again = await app.rerun(run.id, from_step="ship")
        done = await app.wait_for_run(again, timeout=LIMIT)
    assert done.status == "completed" and done.output == ["ch_1", "box", "shipped", "told"]
    assert (charge.calls, pack.calls, ship.calls, notify.calls) == (1, 1, 2, 1), "charge and pack did not run again"
    kept = {s.id: s for s in done.steps}
    assert [s.id for s in done.steps] == ["charge", "pack", "ship", "notify"]
    for name in ("charge", "pack"):
        before = next(s for s in failed.steps if s.id == name)
        assert (kept[name].status, kept[name].output, kept[name].attempts) == (before.status, before.output, 1)
        assert kept[name].started_at == before.started_at, "the kept record is the original's"


async def test_from_the_first_step_nothing_is_kept(app: tarry.Tarry) -> None:
    first = Counter(1)

    @app.function(trigger="job/go")
    async def job(ctx: tarry.Context) -> Any:
        return await ctx.step.run("first", first)

    async with app:
        run = await start_run(app, tarry.Event("job/go"))
        await app.wait_for_run(await app.rerun(run.id, from_step="first"), timeout=LIMIT)
    assert first.calls == 2


async def test_a_kept_failed_step_raises_its_step_error_again_without_running(app: tarry.Tarry) -> None:
    lookup, ship = Broken(), Broken("shipped")

    @app.function(trigger="shop/order.paid")
    async def fulfil(ctx: tarry.Context) -> list[Any]:
        try:
            found = await ctx.step.run("lookup", lookup)
        except tarry.StepError as exc:
            found = f"lookup failed: {exc.name}: {exc.message}"
        return [found, await ctx.step.run("ship", ship)]

    async with app:
        run = await start_run(app, tarry.Event("shop/order.paid", {}))
        original = await app.wait_for_run(run.id, timeout=LIMIT)
        assert original.status == "failed"
        lookup.broken = ship.broken = False
        done = await app.wait_for_run(await app.rerun(run.id, from_step="ship"), timeout=LIMIT)
    assert done.output == ["lookup failed: NonRetriableError: still broken", "shipped"]
    assert lookup.calls == 1, "the failed step was not run again: its StepError was raised from the record"
    assert [(s.id, s.status) for s in done.steps] == [("lookup", "failed"), ("ship", "completed")]
    [kept] = [s for s in done.steps if s.id == "lookup"]
    assert kept.errors == next(s for s in original.steps if s.id == "lookup").errors, "with every attempt's error"
    assert [e["message"] for e in kept.errors] == ["still broken"]


async def test_repeated_step_ids_are_kept_by_their_recorded_ids(app: tarry.Tarry) -> None:
    item = Counter("x")
    last = Broken("end")

    @app.function(trigger="job/go")
    async def job(ctx: tarry.Context) -> list[Any]:
        items = [await ctx.step.run("item", item) for _ in range(3)]
        return [*items, await ctx.step.run("last", last)]

    async with app:
        run = await start_run(app, tarry.Event("job/go"))
        assert [s.id for s in (await app.wait_for_run(run.id, timeout=LIMIT)).steps] == [
            "item", "item:1", "item:2", "last"]  # fmt: skip
        last.broken = False
        done = await app.wait_for_run(await app.rerun(run.id, from_step="item:2"), timeout=LIMIT)
    assert done.output == ["x", "x", "x", "end"] and item.calls == 4, "item and item:1 kept, item:2 anew"


async def test_kept_steps_do_not_sleep_or_send_again(app: tarry.Tarry, clock: VirtualClock) -> None:
    finish = Broken("done")
    received: list[str] = []

    @app.function(trigger="job/go")
    async def job(ctx: tarry.Context) -> Any:
        await ctx.step.sleep("nap", "1h")
        await ctx.step.send_event("tell", tarry.Event("job/told"))
        return await ctx.step.run("finish", finish)

    @app.function(trigger="job/told")
    async def listener(ctx: tarry.Context) -> None:
        received.append(ctx.event.id or "")

    async with app:
        run = await start_run(app, tarry.Event("job/go"))
        await clock.advance("1h")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).status == "failed"
        finish.broken = False
        done = await app.wait_for_run(await app.rerun(run.id, from_step="finish"), timeout=LIMIT)
        await app.idle(timeout=LIMIT)
    assert done.status == "completed" and done.output == "done"
    assert len(received) == 1, "the kept send_event sent nothing again"


# -- waits in a rerun ---------------------------------------------------------


def two_waits(app: tarry.Tarry, finish: Broken) -> None:
    @app.function(trigger="cart/opened")
    async def cart(ctx: tarry.Context) -> list[Any]:
        first = await ctx.step.wait_for_event("first", event="cart/item", match="data.cart", timeout="1d")
        second = await ctx.step.wait_for_event("second", event="cart/item", match="data.cart", timeout="1d")
        done = await ctx.step.run("finish", finish)
        return [first.data["n"] if first else None, second.data["n"] if second else None, done]


async def original_with_two_items(app: tarry.Tarry) -> tarry.Run:
    run = await start_run(app, tarry.Event("cart/opened", {"cart": "c1"}))
    await app.send(tarry.Event("cart/item", {"cart": "c1", "n": 1}))
    await app.idle(timeout=LIMIT)
    await app.send(tarry.Event("cart/item", {"cart": "c1", "n": 2}))
    failed = await app.wait_for_run(run.id, timeout=LIMIT)
    assert failed.status == "failed" and [s.output["data"]["n"] for s in failed.steps[:2]] == [1, 2]
    return failed


async def test_a_kept_wait_keeps_consuming_its_event(app: tarry.Tarry) -> None:
    finish = Broken("paid")
    two_waits(app, finish)
    async with app:
        run = await original_with_two_items(app)
        finish.broken = False
        done = await app.wait_for_run(await app.rerun(run.id, from_step="second"), timeout=LIMIT)
    assert done.output == [1, 2, "paid"], "the later wait looked back, past the event the kept wait consumed"


async def test_the_waits_of_a_rerun_look_back_from_the_original_trigger(app: tarry.Tarry) -> None:
    finish = Broken("paid")
    two_waits(app, finish)
    async with app:
        run = await original_with_two_items(app)
        finish.broken = False
        done = await app.wait_for_run(await app.rerun(run.id, from_step="first"), timeout=LIMIT)
        full = await app.wait_for_run(await app.rerun(run.id), timeout=LIMIT)
    assert done.output == [1, 2, "paid"], "both waits found the events sent after the original trigger"
    assert full.output == [1, 2, "paid"]


async def test_a_rerun_of_a_batch_run_has_the_same_events_and_looks_back_from_the_last(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    finish = Broken("ok")

    @app.function(trigger="doc/edited", batch=tarry.Batch(max_size=2, timeout="1m"))
    async def reindex(ctx: tarry.Context) -> list[Any]:
        later = await ctx.step.wait_for_event("later", event="doc/edited", timeout="1h")
        return [[e.data["i"] for e in ctx.events], later.data["i"] if later else None, await ctx.step.run("f", finish)]

    async with app:
        ids = await app.send([tarry.Event("doc/edited", {"i": 1}), tarry.Event("doc/edited", {"i": 2})])
        await app.idle(timeout=LIMIT)
        [run] = await app.runs_for_event(ids[0])
        await app.send(tarry.Event("doc/edited", {"i": 3}))  # the wait gets it (and it opens a batch of its own)
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).status == "failed"
        finish.broken = False
        again = await app.rerun(run.id)
        done = await app.wait_for_run(again, timeout=LIMIT)
        for_each = [[r.id for r in await app.runs_for_event(i)] for i in ids]
    assert done.output == [[1, 2], 3, "ok"]
    assert [e.id for e in done.events] == ids and done.event.id == ids[0]
    assert for_each == [[run.id, again], [run.id, again]]


async def test_resume_url_steps_always_run_anew(app: tarry.Tarry, clock: VirtualClock) -> None:
    after = Broken("filed")
    tokens: dict[str, str] = {}

    @app.function(trigger="expense/submitted")
    async def approve(ctx: tarry.Context) -> Any:
        handle = await ctx.step.resume_url("link", timeout="1d")
        tokens[ctx.run_id] = handle.token
        answer = await ctx.step.wait_for_resume("answer", handle)
        return [answer["event"], await ctx.step.run("after", after)]

    async with app:
        run = await start_run(app, tarry.Event("expense/submitted", {}))
        assert await app.resume(tokens[run.id], {"ok": "first"})
        failed = await app.wait_for_run(run.id, timeout=LIMIT)
        assert failed.status == "failed"
        after.broken = False
        await clock.advance("1h")

        from_answer = await app.rerun(run.id, from_step="answer")
        await app.idle(timeout=LIMIT)
        assert tokens[from_answer] != tokens[run.id], "a new token"
        assert not await app.resume(tokens[run.id], {"ok": "old"}), "the original's token resumes nothing"
        assert await app.resume(tokens[from_answer], {"ok": "new"})
        resumed = await app.wait_for_run(from_answer, timeout=LIMIT)

        from_after = await app.rerun(run.id, from_step="after")
        kept_answer = await app.wait_for_run(from_after, timeout=LIMIT)
    assert resumed.output == [{"ok": "new"}, "filed"]
    link = next(s for s in resumed.steps if s.id == "link")
    original_link = next(s for s in failed.steps if s.id == "link")
    assert link.started_at is not None and original_link.started_at is not None
    assert link.started_at > original_link.started_at, "made anew, with a new expiry"
    assert link.output["expires_at"] > original_link.output["expires_at"]
    assert kept_answer.output == [{"ok": "first"}, "filed"], "the kept wait_for_resume returns its record"
    assert tokens[from_after] not in (tokens[run.id], tokens[from_answer]), "the link ran anew before a kept wait"
    assert next(s for s in kept_answer.steps if s.id == "link").output["expires_at"] == link.output["expires_at"]


# -- which options apply --------------------------------------------------------


async def test_a_rerun_registers_the_functions_cancel_on(app: tarry.Tarry) -> None:
    @app.function(trigger="user/signed-up", cancel_on=[tarry.CancelOn(event="user/deleted", match="data.user")])
    async def onboard(ctx: tarry.Context) -> None:
        await ctx.step.wait_for_event("never", event="user/never", timeout="1d")

    async with app:
        run = await start_run(app, tarry.Event("user/signed-up", {"user": "u1"}))
        await app.cancel_run(run.id)
        again = await app.rerun(run.id)
        await app.idle(timeout=LIMIT)
        [stop] = await app.send(tarry.Event("user/deleted", {"user": "u1"}))
        done = await app.wait_for_run(again, timeout=LIMIT)
    assert done.status == "cancelled" and done.error is not None
    assert done.error["message"] == f"cancelled by a cancel_on event (user/deleted {stop})"


def events_of(app: tarry.Tarry, **options: Any) -> None:
    """A function ``job`` that returns the ``data.i`` of its events (after waiting, when ``data.wait``)."""

    @app.function(trigger="job/go", **options)
    async def job(ctx: tarry.Context) -> list[Any]:
        if ctx.event.data.get("wait"):
            await ctx.step.wait_for_event("hold", event="job/release", timeout="1d")
        return [e.data.get("i") for e in ctx.events]


@pytest.mark.parametrize(
    "options",
    [
        {"idempotency": "event.data.k"},
        {"rate_limit": tarry.RateLimit(limit=1, period="1h")},
        {"singleton": tarry.Singleton(mode="skip")},
    ],
    ids=["idempotency", "rate_limit", "singleton"],
)
async def test_a_rerun_ignores_the_options_that_decide_whether_an_event_starts_a_run(
    app: tarry.Tarry, options: dict[str, Any]
) -> None:
    events_of(app, **options)
    async with app:
        run = await start_run(app, tarry.Event("job/go", {"i": 1, "k": "same"}))
        if "singleton" in options:  # an unfinished run of the partition: a new event would be skipped
            await start_run(app, tarry.Event("job/go", {"i": 2, "k": "other", "wait": True}))
        [skipped] = await app.send(tarry.Event("job/go", {"i": 3, "k": "same"}))
        await app.idle(timeout=LIMIT)
        assert await app.runs_for_event(skipped) == [], "the option turns a new event away"
        done = await app.wait_for_run(await app.rerun(run.id), timeout=LIMIT)
    assert done.status == "completed" and done.output == [1] and done.rerun_of == run.id


async def test_a_rerun_of_a_debounced_run_starts_at_once_with_the_bursts_events(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    events_of(app, debounce=tarry.Debounce(period="5m"))
    async with app:
        ids = await app.send([tarry.Event("job/go", {"i": i}) for i in (1, 2, 3)])
        await clock.advance("5m")
        [run] = await app.runs_for_event(ids[0])
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == [1, 2, 3]
        again = await app.rerun(run.id)
        done = await app.wait_for_run(again, timeout=LIMIT)  # the clock stands still: no burst to wait for
    assert done.output == [1, 2, 3] and [e.id for e in done.events] == ids and done.event.id == ids[-1]


def held_in(app: tarry.Tarry, gate: Gate, **options: Any) -> None:
    """``job``: its one step stays in ``gate`` under ``data.name``."""

    @app.function(trigger="job/go", **options)
    async def job(ctx: tarry.Context) -> str:
        return str(await ctx.step.run("work", gate.hold, ctx.event.data["name"]))


async def finished(app: tarry.Tarry, gate: Gate, name: str, **data: Any) -> tarry.Run:
    gate.open(name)
    run = await start_run(app, tarry.Event("job/go", {"name": name, **data}))
    return await app.wait_for_run(run.id, timeout=LIMIT)


async def test_a_rerun_obeys_concurrency(app: tarry.Tarry) -> None:
    gate = Gate()
    held_in(app, gate, concurrency=tarry.Concurrency(limit=1))
    async with app:
        done = await finished(app, gate, "done")
        await app.send(tarry.Event("job/go", {"name": "busy"}))
        await gate.reached(2)
        again = await app.rerun(done.id)

        async def queued() -> bool:
            run = await app.get_run(again)
            return run is not None and run.status == "queued" and run.queued_reason == "concurrency"

        await eventually(queued, "the rerun is held by the concurrency limit")
        await gate.stays(2)
        gate.open("busy")
        rerun = await app.wait_for_run(again, timeout=LIMIT)
    assert rerun.output == "done" and gate.entered == ["done", "busy", "done"] and gate.most == 1


async def test_a_rerun_obeys_throttle(app: tarry.Tarry, clock: VirtualClock) -> None:
    gate = Gate()
    held_in(app, gate, throttle=tarry.Throttle(limit=1, period="1h"))
    async with app:
        done = await finished(app, gate, "done")
        again = await app.rerun(done.id)
        await app.idle(timeout=LIMIT)
        run = await app.get_run(again)
        assert run is not None and run.status == "queued" and run.queued_reason == "throttle"
        await clock.advance("1h")
        rerun = await app.wait_for_run(again, timeout=LIMIT)
    assert rerun.output == "done"


async def test_a_rerun_obeys_priority(app: tarry.Tarry) -> None:
    gate = Gate()
    held_in(app, gate, concurrency=tarry.Concurrency(limit=1), priority=tarry.Priority(run="event.data.p"))
    async with app:
        urgent = await finished(app, gate, "urgent", p=600)
        await app.send(tarry.Event("job/go", {"name": "busy", "p": 0}))
        await gate.reached(2)
        [plain] = await app.send(tarry.Event("job/go", {"name": "plain", "p": 0}))
        again = await app.rerun(urgent.id)
        await gate.stays(2)
        gate.open()
        await app.wait_for_run(again, timeout=LIMIT)
        await app.wait_for_run((await app.runs_for_event(plain))[0].id, timeout=LIMIT)
    assert gate.entered == ["urgent", "busy", "urgent", "plain"], "the rerun took its priority's place"


async def test_a_rerun_obeys_timeouts(app: tarry.Tarry, clock: VirtualClock) -> None:
    slow = [False]

    @app.function(trigger="job/go", timeouts=tarry.Timeouts(finish="1h"))
    async def job(ctx: tarry.Context) -> str:
        if slow[0]:
            await ctx.step.sleep("nap", "2h")
        return "done"

    async with app:
        run = await start_run(app, tarry.Event("job/go"))
        slow[0] = True
        again = await app.rerun(run.id)
        await app.idle(timeout=LIMIT)
        await clock.advance("1h")
        done = await app.wait_for_run(again, timeout=LIMIT)
    assert done.status == "cancelled" and done.error == {"name": "Cancelled",
                                                         "message": "timeouts.finish: not finished within 1h"}  # fmt: skip


# -- refused, nothing written ---------------------------------------------------


async def count_runs(app: tarry.Tarry) -> int:
    return len(await app.list_runs(limit=10_000))


async def test_an_unknown_or_unfinished_run_or_step_is_refused_with_nothing_written(app: tarry.Tarry) -> None:
    @app.function(trigger="job/go")
    async def job(ctx: tarry.Context) -> None:
        await ctx.step.run("one", lambda: 1)
        if ctx.event.data.get("wait"):
            await ctx.step.wait_for_event("hold", event="job/release", timeout="1d")

    async with app:
        done = await start_run(app, tarry.Event("job/go"))
        waiting = await start_run(app, tarry.Event("job/go", {"wait": True}))
        before = await count_runs(app)
        with pytest.raises(ValueError, match="invalid run_id 'nope': no such run"):
            await app.rerun("nope")
        with pytest.raises(ValueError, match=f"run {waiting.id} is waiting: only a finished run"):
            await app.rerun(waiting.id)
        with pytest.raises(ValueError, match=r"invalid from_step 'two': run \w+ has no such step \(its steps: 'one'\)"):
            await app.rerun(done.id, from_step="two")
        for bad in ("", 3):
            with pytest.raises(ValueError, match="invalid from_step"):
                await app.rerun(done.id, from_step=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="invalid run_id"):
            await app.rerun(None)  # type: ignore[arg-type]
        assert await count_runs(app) == before
        assert (await app.get_run(done.id)) == done


async def test_a_run_of_a_function_no_longer_registered_is_refused(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()

    @app.function(trigger="job/go")
    async def job(ctx: tarry.Context) -> None:
        return None

    async with app:
        run = await start_run(app, tarry.Event("job/go"))
    changed = make_app()

    @changed.function(trigger="job/go")
    async def renamed(ctx: tarry.Context) -> None:
        return None

    async with changed:
        before = await count_runs(changed)
        with pytest.raises(ValueError, match=f"run {run.id} is a run of 'job', which is not a function of this app"):
            await changed.rerun(run.id)
        assert await count_runs(changed) == before
