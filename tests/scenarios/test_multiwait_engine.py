"""wait_for_all, wait_for_any and collect_events: results, order, consumption, replay and a race, on both stores."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


def decision(app: tarry.Tarry, on_timeout: str = "continue") -> None:
    @app.function(trigger="refund/requested")
    async def refund(ctx: tarry.Context) -> Any:
        choice = await ctx.step.wait_for_any("decision", [
            tarry.Wait(event="refund/approved", match="data.refundId"),
            tarry.Wait(event="refund/rejected", match="data.refundId"),
        ], timeout="2d", on_timeout=on_timeout)  # fmt: skip
        if choice is None:
            return None
        index, event = choice
        return [index, event.name, event.data]


async def test_wait_for_any_returns_the_index_and_the_event(app: tarry.Tarry) -> None:
    decision(app)
    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"refundId": "r1"}))
        assert run.status == "waiting"
        await app.send(tarry.Event("refund/rejected", {"refundId": "other"}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting"
        await app.send(tarry.Event("refund/rejected", {"refundId": "r1"}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [1, "refund/rejected", {"refundId": "r1"}]
    [step] = [s for s in done.steps if s.id == "decision"]
    assert step.kind == "wait_for_any" and step.output[0] == 1


async def test_a_losing_condition_of_wait_for_any_consumes_nothing(app: tarry.Tarry) -> None:
    @app.function(trigger="refund/requested")
    async def refund(ctx: tarry.Context) -> Any:
        first = await ctx.step.wait_for_any("decision", [
            tarry.Wait(event="refund/approved", match="data.refundId"),
            tarry.Wait(event="refund/rejected", match="data.refundId"),
        ], timeout="2d")  # fmt: skip
        later = await ctx.step.wait_for_event("later", event="refund/rejected", match="data.refundId", timeout="1h")
        return [first[0] if first else None, later.id if later else None]

    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"refundId": "r1"}))
        await app.send(tarry.Event("refund/approved", {"refundId": "r1"}))
        await app.idle(timeout=LIMIT)
        [rejected] = await app.send(tarry.Event("refund/rejected", {"refundId": "r1"}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [0, rejected]


async def test_wait_for_any_takes_the_oldest_stored_event_and_the_lowest_index_for_one_event(
    app: tarry.Tarry,
) -> None:
    @app.function(trigger="s/start")
    async def chooser(ctx: tarry.Context) -> Any:
        await ctx.step.sleep("later", "1m")
        a = await ctx.step.wait_for_any("a", [tarry.Wait(event="s/x"), tarry.Wait(event="s/y")], timeout="1h")
        b = await ctx.step.wait_for_any("b", [tarry.Wait(key="k"), tarry.Wait(event="s/x")], timeout="1h")
        return [[a[0], a[1].id] if a else None, [b[0], b[1].id] if b else None]

    async with app:
        clock: VirtualClock = app.clock  # type: ignore[assignment]
        run = await start_run(app, tarry.Event("s/start"))
        [y] = await app.send(tarry.Event("s/y"))
        [x] = await app.send(tarry.Event("s/x", key="k"))
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [[1, y], [0, x]]


async def test_wait_for_any_on_timeout(make_app: Any, clock: VirtualClock) -> None:
    for on_timeout, status in (("continue", "completed"), ("fail", "failed"), ("cancel", "cancelled")):
        app = make_app()
        decision(app, on_timeout)
        async with app:
            run = await start_run(app, tarry.Event("refund/requested", {"refundId": "r1"}))
            await clock.advance("2d")
            done = await app.wait_for_run(run.id, timeout=LIMIT)
        assert done.status == status, on_timeout
        if on_timeout == "continue":
            assert done.output is None
        if on_timeout == "fail":
            assert done.error is not None and done.error["name"] == "WaitTimeoutError"


def kyc(app: tarry.Tarry, on_timeout: str = "continue") -> None:
    @app.function(trigger="shop/order.placed")
    async def fulfil(ctx: tarry.Context) -> Any:
        order_id = ctx.event.data["orderId"]
        ready = await ctx.step.wait_for_all("kyc-and-payment", [
            tarry.Wait(event="kyc/document.verified", match="data.userId"),
            tarry.Wait(event="billing/payment.succeeded", key=f"order-{order_id}"),
        ], timeout="3d", on_timeout=on_timeout)  # fmt: skip
        return [None if e is None else e.name for e in ready]


async def test_wait_for_all_completes_with_the_last_condition(app: tarry.Tarry, clock: VirtualClock) -> None:
    kyc(app)
    async with app:
        run = await start_run(app, tarry.Event("shop/order.placed", {"orderId": 7, "userId": "u1"}))
        await app.send(tarry.Event("billing/payment.succeeded", {}, key="order-7"))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting"
        waits = await app.engine.open_waits(run.id)
        assert [(w.kind, w.condition) for w in waits] == [("wait_for_all", 0)]
        await clock.advance("1d")
        await app.send(tarry.Event("kyc/document.verified", {"userId": "u1"}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == ["kyc/document.verified", "billing/payment.succeeded"]
    assert [s.kind for s in done.steps if s.id == "kyc-and-payment"] == ["wait_for_all"]


async def test_wait_for_all_at_the_deadline(make_app: Any, clock: VirtualClock) -> None:
    for on_timeout, status in (("continue", "completed"), ("fail", "failed"), ("cancel", "cancelled")):
        app = make_app()
        kyc(app, on_timeout)
        async with app:
            run = await start_run(app, tarry.Event("shop/order.placed", {"orderId": 7, "userId": "u1"}))
            await app.send(tarry.Event("billing/payment.succeeded", {}, key="order-7"))
            await app.idle(timeout=LIMIT)
            await clock.advance("3d")
            done = await app.wait_for_run(run.id, timeout=LIMIT)
        assert done.status == status, on_timeout
        if on_timeout == "continue":
            assert done.output == [None, "billing/payment.succeeded"]


async def test_an_event_satisfies_one_condition_of_wait_for_all_the_first_open_one(app: tarry.Tarry) -> None:
    @app.function(trigger="v/start")
    async def both(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_all("two", [tarry.Wait(event="v/x"), tarry.Wait(event="v/x")], timeout="1h")
        return [e.data["n"] for e in got if e is not None]

    async with app:
        run = await start_run(app, tarry.Event("v/start"))
        await app.send(tarry.Event("v/x", {"n": 1}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting"
        await app.send(tarry.Event("v/x", {"n": 2}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [1, 2]


async def test_wait_for_all_takes_stored_events_in_condition_order(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="v/start")
    async def both(ctx: tarry.Context) -> Any:
        await ctx.step.sleep("later", "1m")
        got = await ctx.step.wait_for_all("two", [tarry.Wait(event="v/x", if_exp="async.data.n > 1"),
                                                  tarry.Wait(event="v/x")], timeout="1h")  # fmt: skip
        return [e.data["n"] for e in got if e is not None]

    async with app:
        run = await start_run(app, tarry.Event("v/start"))
        for n in (1, 2, 3):
            await app.send(tarry.Event("v/x", {"n": n}))
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [2, 1]


def votes(app: tarry.Tarry, count: int | None = 3) -> None:
    @app.function(trigger="poll/opened")
    async def poll(ctx: tarry.Context) -> Any:
        got = await ctx.step.collect_events("votes", event="poll/vote.cast", match="data.pollId", count=count,
                                            timeout="1h")  # fmt: skip
        return [e.data["choice"] for e in got]


async def test_collect_events_completes_at_count(app: tarry.Tarry, clock: VirtualClock) -> None:
    votes(app)
    async with app:
        run = await start_run(app, tarry.Event("poll/opened", {"pollId": "p"}))
        for choice in ("a", "b"):
            await app.send(tarry.Event("poll/vote.cast", {"pollId": "p", "choice": choice}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting"
        [wait] = await app.engine.open_waits(run.id)
        assert wait.kind == "collect_events" and wait.condition == 0
        await app.send(tarry.Event("poll/vote.cast", {"pollId": "other", "choice": "x"}))
        await app.send(tarry.Event("poll/vote.cast", {"pollId": "p", "choice": "c"}))
        await app.send(tarry.Event("poll/vote.cast", {"pollId": "p", "choice": "d"}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == ["a", "b", "c"]


async def test_collect_events_returns_what_it_has_at_the_deadline(app: tarry.Tarry, clock: VirtualClock) -> None:
    votes(app)
    async with app:
        run = await start_run(app, tarry.Event("poll/opened", {"pollId": "p"}))
        await app.send(tarry.Event("poll/vote.cast", {"pollId": "p", "choice": "a"}))
        await app.idle(timeout=LIMIT)
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        assert done.output == ["a"]
        empty = await start_run(app, tarry.Event("poll/opened", {"pollId": "q"}))
        await clock.advance("1h")
        assert (await app.wait_for_run(empty.id, timeout=LIMIT)).output == []


async def test_collect_events_looks_back_at_stored_events(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="poll/opened")
    async def poll(ctx: tarry.Context) -> Any:
        await ctx.step.sleep("later", "1m")
        got = await ctx.step.collect_events("votes", event="poll/vote.cast", match="data.pollId", count=2,
                                            timeout="1h")  # fmt: skip
        return [e.data["choice"] for e in got]

    async with app:
        run = await start_run(app, tarry.Event("poll/opened", {"pollId": "p"}))
        for choice in "abc":
            await app.send(tarry.Event("poll/vote.cast", {"pollId": "p", "choice": choice}))
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == ["a", "b"]


async def test_replay_after_a_restart_returns_the_recorded_results(make_app: Any, clock: VirtualClock) -> None:
    calls: list[str] = []

    def define(app: tarry.Tarry) -> None:
        @app.function(trigger="r/start")
        async def flow(ctx: tarry.Context) -> Any:
            any_ = await ctx.step.wait_for_any("any", [tarry.Wait(event="r/a"), tarry.Wait(event="r/b")],
                                               timeout="1h")  # fmt: skip
            all_ = await ctx.step.wait_for_all("all", [tarry.Wait(event="r/c")], timeout="1h")
            got = await ctx.step.collect_events("collect", event="r/d", count=1, timeout="1h")
            await ctx.step.run("note", lambda: calls.append("note"))
            await ctx.step.wait_for_event("hold", event="r/end", timeout="1h")
            assert any_ is not None and isinstance(any_, tuple)
            return [any_[0], any_[1].name, all_[0].name if all_[0] else None, [e.name for e in got]]

    app = make_app()
    define(app)
    async with app:
        run = await start_run(app, tarry.Event("r/start"))
        for name in ("r/b", "r/c", "r/d"):
            await app.send(tarry.Event(name))
            await app.idle(timeout=LIMIT)
        assert (await app.get_run(run.id)).status == "waiting"
    again = make_app()
    define(again)
    async with again:
        await again.send(tarry.Event("r/end"))
        done = await again.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [1, "r/b", "r/c", ["r/d"]]
    assert calls == ["note"]


async def test_gathered_waits_of_one_run_the_first_called_takes_the_event(app: tarry.Tarry) -> None:
    @app.function(trigger="g/start")
    async def gathered(ctx: tarry.Context) -> Any:
        a, b = await asyncio.gather(
            ctx.step.collect_events("first", event="g/x", count=1, timeout="1h"),
            ctx.step.wait_for_event("second", event="g/x", timeout="1h"),
        )
        return [[e.data["n"] for e in a], b.data["n"] if b else None]

    async with app:
        run = await start_run(app, tarry.Event("g/start"))
        await app.send(tarry.Event("g/x", {"n": 1}))
        await app.idle(timeout=LIMIT)
        await app.send(tarry.Event("g/x", {"n": 2}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [[1], 2]


async def test_sync_twins(app: tarry.Tarry) -> None:
    @app.function(trigger="t/start")
    def plain(ctx: tarry.Context) -> Any:
        choice = ctx.step.wait_for_any_sync("any", [tarry.Wait(event="t/a")], timeout="1h")
        ready = ctx.step.wait_for_all_sync("all", [tarry.Wait(event="t/b")], timeout="1h")
        got = ctx.step.collect_events_sync("c", event="t/c", count=1, timeout="1h")
        assert choice is not None
        return [choice[0], ready[0].name if ready[0] else None, len(got)]

    async with app:
        run = await start_run(app, tarry.Event("t/start"))
        for name in ("t/a", "t/b", "t/c"):
            await app.send(tarry.Event(name))
            await app.idle(timeout=LIMIT)
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [0, "t/b", 1]


async def test_bad_input_raises_at_the_call_and_registers_nothing(app: tarry.Tarry) -> None:
    problems: dict[str, str] = {}
    calls: dict[str, tuple[str, dict[str, Any]]] = {
        "empty": ("all", {"waits": [], "timeout": "1h"}),
        "not-a-wait": ("any", {"waits": [tarry.Wait(event="e"), {"event": "e"}], "timeout": "1h"}),
        "neither": ("all", {"waits": [tarry.Wait(event="e"), tarry.Wait()], "timeout": "1h"}),
        "bad-match": ("any", {"waits": [tarry.Wait(event="e", match="userId")], "timeout": "1h"}),
        "bad-if-exp": (
            "all",
            {"waits": [tarry.Wait(event="e"), tarry.Wait(event="e", if_exp="x ==")], "timeout": "1h"},
        ),
        "no-timeout": ("any", {"waits": [tarry.Wait(event="e")], "timeout": None}),
        "bad-timeout": ("all", {"waits": [tarry.Wait(event="e")], "timeout": "1 month"}),
        "bad-on-timeout": ("any", {"waits": [tarry.Wait(event="e")], "timeout": "1h", "on_timeout": "explode"}),
        "count-zero": ("collect", {"event": "e", "count": 0, "timeout": "1h"}),
        "count-text": ("collect", {"event": "e", "count": "3", "timeout": "1h"}),
        "collect-neither": ("collect", {"timeout": "1h"}),
    }

    @app.function(trigger="bad/start")
    async def bad(ctx: tarry.Context) -> None:
        for name, (kind, options) in calls.items():
            try:
                if kind == "all":
                    await ctx.step.wait_for_all(name, **options)
                elif kind == "any":
                    await ctx.step.wait_for_any(name, **options)
                else:
                    await ctx.step.collect_events(name, **options)
            except ValueError as exc:
                problems[name] = str(exc)

    async with app:
        run = await start_run(app, tarry.Event("bad/start"))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        assert await app.engine.open_waits() == []
    assert done.status == "completed"
    assert set(problems) == set(calls)
    assert "condition 1" in problems["not-a-wait"] and "tarry.Wait" in problems["not-a-wait"]
    assert "condition 1" in problems["neither"]
    assert "condition 0" in problems["bad-match"] and "match" in problems["bad-match"]
    assert "condition 1" in problems["bad-if-exp"]
    assert "count" in problems["count-zero"] and "count" in problems["count-text"]
    assert "on_timeout" in problems["bad-on-timeout"] and "timeout" in problems["no-timeout"]
    assert "empty" not in done.steps


@pytest.mark.parametrize("trials", [40])
def test_two_events_racing_for_a_wait_for_any_exactly_one_wins(make_app: Any, trials: int) -> None:
    """Two events, each matching one condition, sent at once from two threads: one wins, the other is
    left for the run's next wait."""
    app = make_app()

    @app.function(trigger="race/start")
    async def racer(ctx: tarry.Context) -> Any:
        choice = await ctx.step.wait_for_any("pick", [
            tarry.Wait(event="race/a", match="data.n"), tarry.Wait(event="race/b", match="data.n"),
        ], timeout="1h")  # fmt: skip
        assert choice is not None
        other = "race/b" if choice[0] == 0 else "race/a"
        rest = await ctx.step.wait_for_event("rest", event=other, match="data.n", timeout="1h")
        return [choice[1].id, rest.id if rest else None]

    async def scenario() -> None:
        async with app:
            sent: dict[int, set[str]] = {}
            for n in range(trials):
                await app.send(tarry.Event("race/start", {"n": n}))
            await app.idle(timeout=LIMIT)
            for n in range(trials):
                ids: list[str] = []
                barrier = threading.Barrier(2)

                def send(name: str, n: int = n, ids: list[str] = ids, barrier: threading.Barrier = barrier) -> None:
                    barrier.wait()
                    threading.Event().wait(random.random() / 2000)
                    ids.extend(app.send_sync(tarry.Event(name, {"n": n})))

                threads = [threading.Thread(target=send, args=(name,)) for name in ("race/a", "race/b")]
                for t in threads:
                    t.start()
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda threads=threads: [t.join() for t in threads]
                )
                sent[n] = set(ids)
            await app.idle(timeout=LIMIT)
            runs = await app.list_runs(function_id="racer", limit=1000)
            assert len(runs) == trials
            for run in runs:
                done = await app.wait_for_run(run.id, timeout=LIMIT)
                assert done.status == "completed", done.error
                winner, rest = done.output
                assert {winner, rest} == sent[done.event.data["n"]], "one wins, the other is left for the next wait"

    asyncio.run(scenario())
