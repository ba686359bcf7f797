"""wait_for_event through the public API: match, if_exp, key, lookback, timeouts, notify, races."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


def onboarding(app: tarry.Tarry) -> None:
    @app.function(trigger="app/account.created")
    async def onboarding_drip(ctx: tarry.Context) -> str:
        await ctx.step.run("send-welcome", lambda: "sent")
        completed = await ctx.step.wait_for_event(
            "wait-for-onboarding", event="app/onboarding.completed", timeout="3d", match="data.userId"
        )
        return "tips" if completed is not None else "nudge"


async def test_onboarding_drip_completion_within_3_days_gives_tips(app: tarry.Tarry, clock: VirtualClock) -> None:
    onboarding(app)
    async with app:
        run = await start_run(app, tarry.Event("app/account.created", {"userId": "u1"}))
        assert run.status == "waiting"
        await clock.advance("2d")
        [completion] = await app.send(tarry.Event("app/onboarding.completed", {"userId": "u1"}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "tips"
    wait = next(s for s in done.steps if s.id == "wait-for-onboarding")
    assert wait.kind == "wait_for_event" and wait.status == "completed"
    assert wait.output["id"] == completion and wait.output["data"] == {"userId": "u1"}


async def test_onboarding_drip_without_completion_nudges_after_3_days(app: tarry.Tarry, clock: VirtualClock) -> None:
    onboarding(app)
    async with app:
        run = await start_run(app, tarry.Event("app/account.created", {"userId": "u1"}))
        await app.send(tarry.Event("app/onboarding.completed", {"userId": "someone-else"}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting", "another user's event must not match"
        await clock.advance("71h")
        assert (await app.get_run(run.id)).status == "waiting"
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "nudge"


async def test_the_wait_returns_the_event(app: tarry.Tarry) -> None:
    @app.function(trigger="a/start")
    async def waiter(ctx: tarry.Context) -> dict[str, Any]:
        got = await ctx.step.wait_for_event("w", event="a/done", timeout="1h")
        assert isinstance(got, tarry.Event)
        return {"name": got.name, "data": got.data, "id": got.id, "ts": got.ts, "key": got.key}

    async with app:
        run = await start_run(app, tarry.Event("a/start"))
        [event_id] = await app.send(tarry.Event("a/done", {"x": 1}, key="k1"))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output["id"] == event_id and done.output["data"] == {"x": 1} and done.output["key"] == "k1"
    assert isinstance(done.output["ts"], int)


async def test_if_exp_with_a_value_from_an_earlier_step(app: tarry.Tarry) -> None:
    @app.function(trigger="report/requested")
    async def report(ctx: tarry.Context) -> str:
        completion_id = await ctx.step.run("start-job", lambda: "job-" + ctx.event.data["n"])
        done = await ctx.step.wait_for_event(
            "wait-for-job", event="job/completed", timeout="1h",
            if_exp=f"async.data.completionId == {json.dumps(completion_id)}",
        )  # fmt: skip
        return done.data["result"] if done else "timed out"

    async with app:
        run = await start_run(app, tarry.Event("report/requested", {"n": "7"}))
        await app.send(tarry.Event("job/completed", {"completionId": "job-8", "result": "wrong"}))
        await app.send(tarry.Event("job/completed", {"completionId": "job-7", "result": "right"}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "right"


async def test_if_exp_with_a_residual_is_evaluated_on_candidates(app: tarry.Tarry) -> None:
    @app.function(trigger="cart/opened")
    async def big_spender(ctx: tarry.Context) -> int:
        paid = await ctx.step.wait_for_event(
            "big-payment", event="cart/paid", timeout="1h",
            if_exp="event.data.userId == async.data.userId && async.data.amount > 100",
        )  # fmt: skip
        return paid.data["amount"] if paid else 0

    async with app:
        run = await start_run(app, tarry.Event("cart/opened", {"userId": "u1"}))
        await app.send(tarry.Event("cart/paid", {"userId": "u1", "amount": 50}))
        await app.send(tarry.Event("cart/paid", {"userId": "u2", "amount": 500}))
        await app.send(tarry.Event("cart/paid", {"userId": "u1", "amount": "lots"}))  # fails to evaluate: no match
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting"
        await app.send(tarry.Event("cart/paid", {"userId": "u1", "amount": 150}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == 150


async def test_fan_out_and_gathered_waits(app: tarry.Tarry) -> None:
    @app.function(trigger="batch/start")
    async def coordinator(ctx: tarry.Context) -> list[str]:
        user = ctx.event.data["userId"]
        await ctx.step.send_event(
            "request-all", [tarry.Event(f"task/{t}.requested", {"userId": user}) for t in ("a", "b", "c")]
        )
        results = await asyncio.gather(*(
            ctx.step.wait_for_event(f"wait-{t}", event=f"task/{t}.done", timeout="1h",
                                    if_exp="event.data.userId == async.data.userId")
            for t in ("a", "b", "c")
        ))  # fmt: skip
        return [r.data["by"] if r else "missing" for r in results]

    for task in ("a", "b", "c"):

        def make(task: str) -> None:
            @app.function(trigger=f"task/{task}.requested", id=f"worker-{task}")
            async def worker(ctx: tarry.Context) -> None:
                await ctx.step.send_event(
                    "done", tarry.Event(f"task/{task}.done", {"userId": ctx.event.data["userId"], "by": task})
                )

        make(task)

    async with app:
        other = await start_run(app, tarry.Event("batch/start", {"userId": "someone"}), "coordinator")
        run = await start_run(app, tarry.Event("batch/start", {"userId": "u1"}), "coordinator")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        assert (await app.wait_for_run(other.id, timeout=LIMIT)).output == ["a", "b", "c"]
    assert done.output == ["a", "b", "c"]
    assert sorted(s.id for s in done.steps if s.kind == "wait_for_event") == ["wait-a", "wait-b", "wait-c"]


async def test_order_processing_with_a_key_and_notify(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="order/placed")
    async def process_order(ctx: tarry.Context) -> Any:
        order_id = ctx.event.data["orderId"]
        got = await ctx.step.wait_for_event("wait-for-processing", key=f"order-{order_id}", timeout="10m")
        return None if got is None else got.data

    async with app:
        paid = await start_run(app, tarry.Event("order/placed", {"orderId": "1324"}))
        lost = await start_run(app, tarry.Event("order/placed", {"orderId": "99"}))
        assert await app.notify("order-1324", {"deliveryTime": "2 days"}) == [paid.id]
        assert (await app.wait_for_run(paid.id, timeout=LIMIT)).output == {"deliveryTime": "2 days"}
        assert await app.notify("order-1324", {"again": True}) == [], "a resumed wait is gone"
        await clock.advance("10m")
        timed_out = await app.wait_for_run(lost.id, timeout=LIMIT)
    assert timed_out.status == "completed" and timed_out.output is None


async def test_a_key_and_an_event_name_both_must_match(app: tarry.Tarry) -> None:
    @app.function(trigger="ship/start")
    async def ship(ctx: tarry.Context) -> str:
        got = await ctx.step.wait_for_event("w", event="ship/delivered", key="parcel-1", timeout="1d")
        return got.name if got else "none"

    async with app:
        run = await start_run(app, tarry.Event("ship/start"))
        await app.send(tarry.Event("ship/lost", key="parcel-1"))
        await app.send(tarry.Event("ship/delivered", key="parcel-2"))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting"
        await app.send(tarry.Event("ship/delivered", key="parcel-1"))
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == "ship/delivered"


async def test_a_thousand_runs_wait_on_one_name_and_only_the_right_one_resumes(app: tarry.Tarry) -> None:
    @app.function(trigger="user/created")
    async def correlate(ctx: tarry.Context) -> int:
        got = await ctx.step.wait_for_event("w", event="user/verified", match="data.userId", timeout="7d")
        return got.data["n"] if got else -1

    async with app:
        event_ids = await app.send([tarry.Event("user/created", {"userId": f"u{i}"}) for i in range(1000)])
        await app.idle(timeout=60)
        waiting = await app.list_runs(status="waiting", limit=2000)
        assert len(waiting) == 1000
        await app.send(tarry.Event("user/verified", {"userId": "u617", "n": 617}))
        await app.idle(timeout=LIMIT)
        [resumed] = await app.list_runs(status="completed")
        [expected] = await app.runs_for_event(event_ids[617])
        assert resumed.id == expected.id and resumed.output == 617
        assert len(await app.list_runs(status="waiting", limit=2000)) == 999


async def test_an_event_sent_before_the_wait_matches_with_the_default_lookback(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="shop/checkout.started")
    async def checkout(ctx: tarry.Context) -> dict[str, Any]:
        await ctx.step.sleep("grace", "1m")
        default = await ctx.step.wait_for_event("paid", event="shop/paid", match="data.orderId", timeout="1h")
        live = await ctx.step.wait_for_event(
            "paid-live", event="shop/paid", match="data.orderId", timeout="1h", lookback=None
        )
        return {"default": default.data["n"] if default else None, "live": live.data["n"] if live else None}

    async with app:
        run = await start_run(app, tarry.Event("shop/checkout.started", {"orderId": "o-7"}))
        await app.send(tarry.Event("shop/paid", {"orderId": "o-7", "n": 1}))
        await app.send(tarry.Event("shop/paid", {"orderId": "o-7", "n": 2}))
        await clock.advance("2m")
        # the first (oldest) stored event resolves the default wait; the second is not seen by lookback=None
        assert (await app.get_run(run.id)).status == "waiting"
        await app.send(tarry.Event("shop/paid", {"orderId": "o-7", "n": 3}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == {"default": 1, "live": 3}


async def test_an_event_is_consumed_at_most_once_per_run(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="pair/start")
    async def pair(ctx: tarry.Context) -> list[Any]:
        await ctx.step.sleep("later", "1m")
        first = await ctx.step.wait_for_event("first", event="pair/item", timeout="1h")
        second = await ctx.step.wait_for_event("second", event="pair/item", timeout="1h")
        return [first.data["n"] if first else None, second.data["n"] if second else None]

    async with app:
        run = await start_run(app, tarry.Event("pair/start"))
        await app.send(tarry.Event("pair/item", {"n": 1}))
        await clock.advance("1m")
        assert (await app.get_run(run.id)).status == "waiting"
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [1, None]


async def test_one_event_resumes_every_matching_run_but_one_wait_per_run(app: tarry.Tarry) -> None:
    @app.function(trigger="fan/start")
    async def gathered(ctx: tarry.Context) -> list[Any]:
        results = await asyncio.gather(
            ctx.step.wait_for_event("one", event="fan/go", timeout="1h"),
            ctx.step.wait_for_event("two", event="fan/go", timeout="1h"),
        )
        return [r.data["n"] for r in results]

    async with app:
        runs = [await start_run(app, tarry.Event("fan/start")) for _ in range(3)]
        await app.send(tarry.Event("fan/go", {"n": 1}))
        await app.idle(timeout=LIMIT)
        assert [(await app.get_run(r.id)).status for r in runs] == ["waiting"] * 3
        await app.send(tarry.Event("fan/go", {"n": 2}))
        done = [await app.wait_for_run(r.id, timeout=LIMIT) for r in runs]
    assert [d.output for d in done] == [[1, 2]] * 3


async def test_a_list_of_event_names_first_one_wins(app: tarry.Tarry) -> None:
    @app.function(trigger="ticket/opened")
    async def ticket(ctx: tarry.Context) -> str:
        got = await ctx.step.wait_for_event(
            "answer", event=["ticket/replied", "ticket/closed"], match="data.ticket", timeout="1d"
        )
        return got.name if got else "none"

    async with app:
        run = await start_run(app, tarry.Event("ticket/opened", {"ticket": 5}))
        await app.send(tarry.Event("ticket/closed", {"ticket": 5}))
        await app.send(tarry.Event("ticket/replied", {"ticket": 5}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "ticket/closed"


async def test_lookback_as_a_duration(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="look/start")
    async def look(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("w", event="look/ping", timeout="1m", lookback="1h")
        return got.data["n"] if got else None

    async with app:
        await app.send(tarry.Event("look/ping", {"n": "too old"}))
        await clock.advance("2h")
        await app.send(tarry.Event("look/ping", {"n": "recent"}))
        await clock.advance("30m")
        run = await start_run(app, tarry.Event("look/start"))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "recent", "an event received within the span before the wait, even before the trigger"


@pytest.mark.parametrize("on_timeout", ["continue", "fail", "cancel"])
async def test_on_timeout(app: tarry.Tarry, clock: VirtualClock, on_timeout: str) -> None:
    seen: list[str] = []

    @app.function(trigger="t/start", retries=3)
    async def timing_out(ctx: tarry.Context) -> Any:
        try:
            got = await ctx.step.wait_for_event("w", event="t/never", timeout="1h", on_timeout=on_timeout)
        except tarry.WaitTimeoutError as err:
            seen.append("caught: " + str(err))
            raise
        seen.append("returned")
        return got

    async with app:
        run = await start_run(app, tarry.Event("t/start"))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    if on_timeout == "continue":
        assert done.status == "completed" and done.output is None and seen == ["returned"]
    elif on_timeout == "fail":
        assert done.status == "failed" and done.error["name"] == "WaitTimeoutError"
        assert len(seen) == 1 and seen[0].startswith("caught"), "no retries for a timed-out wait"
    else:
        assert done.status == "cancelled" and seen == []


async def test_an_if_exp_field_the_trigger_lacks_never_matches(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="lack/start")
    async def lacking(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "w", event="lack/done", timeout="1h", if_exp="event.data.userId == async.data.userId"
        )
        return got

    async with app:
        run = await start_run(app, tarry.Event("lack/start", {"no": "user"}))
        await app.send(tarry.Event("lack/done", {"userId": "u1"}))
        await app.send(tarry.Event("lack/done", {}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting"
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed" and done.output is None


async def test_match_on_a_field_missing_on_either_side_never_matches(app: tarry.Tarry, clock: VirtualClock) -> None:
    onboarding(app)
    async with app:
        lacking = await start_run(app, tarry.Event("app/account.created", {}))
        present = await start_run(app, tarry.Event("app/account.created", {"userId": "u1"}))
        await app.send(tarry.Event("app/onboarding.completed", {}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(lacking.id)).status == "waiting"
        assert (await app.get_run(present.id)).status == "waiting"
        await clock.advance("3d")
        assert (await app.wait_for_run(lacking.id, timeout=LIMIT)).output == "nudge"


async def test_a_wait_in_a_plain_def_function(app: tarry.Tarry) -> None:
    @app.function(trigger="sync/wait")
    def sync_waiter(ctx: tarry.Context) -> Any:
        got = ctx.step.wait_for_event_sync("w", event="sync/go", timeout="1h", match="data.id")
        return got.data if got else None

    async with app:
        run = await start_run(app, tarry.Event("sync/wait", {"id": 3}))
        await app.send(tarry.Event("sync/go", {"id": 3, "ok": True}))
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == {"id": 3, "ok": True}


def test_the_race_between_an_event_and_the_wait_resumes_exactly_once(make_app, clock: VirtualClock) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    completions: list[str] = []

    @app.function(trigger="race/start")
    async def racer(ctx: tarry.Context) -> Any:
        await ctx.step.run("prepare", lambda: asyncio.sleep(random.random() / 500))
        got = await ctx.step.wait_for_event("w", event="race/go", match="data.n", timeout="1h")
        await ctx.step.run("complete", lambda: completions.append(ctx.run_id))
        return got.data["n"] if got else None

    trials = 60

    async def scenario() -> None:
        async with app:
            loop = asyncio.get_running_loop()
            for n in range(trials):
                await app.send(tarry.Event("race/start", {"n": n}))
                delay = random.random() / 300

                def send_soon(n: int = n, delay: float = delay) -> None:
                    threading.Event().wait(delay)
                    app.send_sync(tarry.Event("race/go", {"n": n}))

                await loop.run_in_executor(None, send_soon) if n % 3 == 0 else threading.Thread(
                    target=send_soon
                ).start()
            await asyncio.sleep(0.05)
            await app.idle(timeout=LIMIT)
            runs = await app.list_runs(function_id="racer", limit=1000)
            assert len(runs) == trials
            for run in runs:
                done = await app.wait_for_run(run.id, timeout=LIMIT)
                assert done.output == done.event.data["n"], "each run resumed by its own event"
            waits = [s for r in runs for s in (await app.get_run(r.id)).steps if s.id == "w"]
            assert all(w.status == "completed" for w in waits)

    asyncio.run(scenario())
    assert sorted(completions) == sorted(set(completions)) and len(completions) == trials, "exactly one resume each"


async def test_bad_waits_are_refused_at_the_call_naming_what_is_wrong(app: tarry.Tarry) -> None:
    problems: list[tuple[str, str]] = []
    calls = {
        "no-event-nor-key": dict(timeout="1h"),
        "bad-timeout": dict(event="e", timeout="1 month"),
        "negative-timeout": dict(event="e", timeout=-1),
        "bad-on-timeout": dict(event="e", timeout="1h", on_timeout="explode"),
        "bad-if-exp": dict(event="e", timeout="1h", if_exp="async.data.x =="),
        "unknown-name": dict(event="e", timeout="1h", if_exp="order.id == async.data.id"),
        "bad-match": dict(event="e", timeout="1h", match="userId"),
        "empty-key": dict(key="", timeout="1h"),
        "bad-event": dict(event=[], timeout="1h"),
        "bad-lookback": dict(event="e", timeout="1h", lookback="forever"),
    }

    @app.function(trigger="bad/start")
    async def bad(ctx: tarry.Context) -> None:
        for name, options in calls.items():
            try:
                await ctx.step.wait_for_event(name, **options)  # type: ignore[arg-type]
            except ValueError as err:
                problems.append((name, f"{type(err).__name__}: {err}"))
        await ctx.step.wait_for_event("missing-timeout", event="e")  # type: ignore[call-arg]

    async with app:
        run = await start_run(app, tarry.Event("bad/start"))
        assert (await app.get_run(run.id)).steps == [], "nothing of a refused wait is stored"
    found = dict(problems)
    assert len(found) == len(calls)
    assert "event=, key=" in found["no-event-nor-key"]
    assert "timeout" in found["bad-timeout"] and "'1 month'" in found["bad-timeout"]
    assert "on_timeout" in found["bad-on-timeout"] and "'explode'" in found["bad-on-timeout"]
    assert found["bad-if-exp"].startswith("ExpressionError") and "async.data.x ==" in found["bad-if-exp"]
    assert (
        found["unknown-name"].startswith("ExpressionError")
        and "undeclared reference to 'order" in found["unknown-name"]
    )
    assert "match" in found["bad-match"] and "key" in found["empty-key"] and "lookback" in found["bad-lookback"]
    assert run.status == "failed" and "timeout" in run.error["message"]


async def test_an_uncaught_expression_error_fails_the_run_with_its_message(app: tarry.Tarry) -> None:
    @app.function(trigger="exp/start")
    async def exp(ctx: tarry.Context) -> None:
        await ctx.step.wait_for_event("w", event="e", timeout="1h", if_exp="account.id == 1")

    async with app:
        run = await start_run(app, tarry.Event("exp/start"))
    assert run.status == "failed" and run.error["name"] == "ExpressionError"
    assert "account.id == 1" in run.error["message"]


async def test_notify_with_an_empty_key_is_refused(running: tarry.Tarry) -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        await running.notify("")
    with pytest.raises(tarry.InvalidEventError):
        await running.notify("k", ["not", "an", "object"])  # type: ignore[arg-type]
    assert await running.list_runs() == []


async def test_notify_before_the_wait_is_kept_for_a_later_wait(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="late/start")
    async def late(ctx: tarry.Context) -> Any:
        await ctx.step.sleep("s", "1m")
        got = await ctx.step.wait_for_event("w", key="late-1", timeout="1h")
        return got.data if got else None

    async with app:
        run = await start_run(app, tarry.Event("late/start"))
        assert await app.notify("late-1", {"early": True}) == []
        await clock.advance("1m")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == {"early": True}
