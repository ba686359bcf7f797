"""wait_for_all, wait_for_any and collect_events through the public API, on both stores.

Each test reads one rule of waiting for several things at once: results and their order, the one
deadline and each ``on_timeout``, look-back, which condition takes an event, consumption at most
once per run, the stops of ``collect_events``, the step records, the open waits the HTTP API lists,
the ``_sync`` twins, replay after a restart, cancelling, bad input and racing events.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run
from tests.postgres.multiwait_app import NAMES, STARTS, check, duel, starts

KINDS = ("wait_for_all", "wait_for_any", "collect_events")


async def open_waits(app: tarry.Tarry, run_id: str | None = None) -> list[dict[str, Any]]:
    """What ``GET /api/v1/waits`` lists (of one run), read through the HTTP API."""
    server = create_app(app, manage=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://testserver") as client:
        response = await client.get("/api/v1/waits", params={"run_id": run_id} if run_id else {})
        assert response.status_code == 200, response.text
        waits: list[dict[str, Any]] = response.json()["waits"]
        return waits


def ids(events: list[tarry.Event | None] | None) -> list[str | None] | None:
    return None if events is None else [None if e is None else e.id for e in events]


def step_of(run: tarry.Run, step_id: str) -> tarry.StepRecord:
    return next(s for s in run.steps if s.id == step_id)


async def status(app: tarry.Tarry, run_id: str) -> str:
    await app.idle(timeout=LIMIT)
    run = await app.get_run(run_id)
    assert run is not None
    return run.status


# -- wait_for_all -----------------------------------------------------------------


def kyc_and_payment(app: tarry.Tarry, **options: Any) -> None:
    @app.function(trigger="shop/order.placed")
    async def fulfil(ctx: tarry.Context) -> dict[str, Any]:
        order_id = ctx.event.data["orderId"]
        ready = await ctx.step.wait_for_all("kyc-and-payment", [
            tarry.Wait(event="kyc/document.verified", match="data.userId"),
            tarry.Wait(event="billing/payment.succeeded", key=f"order-{order_id}"),
        ], timeout="3d", **options)  # fmt: skip
        return {
            "type": type(ready).__name__,
            "events": all(e is None or isinstance(e, tarry.Event) for e in ready),
            "ids": ids(ready),
        }


ORDER = tarry.Event("shop/order.placed", {"orderId": "o1", "userId": "u1"})


async def test_wait_for_all_returns_the_event_of_each_condition_in_the_order_of_the_waits(app: tarry.Tarry) -> None:
    kyc_and_payment(app)
    async with app:
        run = await start_run(app, ORDER)
        assert run.status == "waiting"
        [payment] = await app.send(tarry.Event("billing/payment.succeeded", {"amount": 5}, key="order-o1"))
        assert await status(app, run.id) == "waiting", "one condition of two is satisfied"
        await app.send(tarry.Event("kyc/document.verified", {"userId": "someone-else"}))
        await app.send(tarry.Event("billing/payment.succeeded", {"amount": 5}, key="order-o2"))
        assert await status(app, run.id) == "waiting", "events of others satisfy nothing"
        [kyc] = await app.send(tarry.Event("kyc/document.verified", {"userId": "u1"}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed"
    assert done.output == {"type": "list", "events": True, "ids": [kyc, payment]}, "in the order of waits"
    step = step_of(done, "kyc-and-payment")
    assert step.kind == "wait_for_all" and step.status == "completed"


async def test_wait_for_all_has_one_deadline_and_continue_gives_none_for_the_unsatisfied(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    kyc_and_payment(app)
    async with app:
        run = await start_run(app, ORDER)
        await clock.advance("1d")
        [kyc] = await app.send(tarry.Event("kyc/document.verified", {"userId": "u1"}))
        await clock.advance("47h")
        assert await status(app, run.id) == "waiting", "the deadline counts from the step, not from each event"
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed" and done.output["ids"] == [kyc, None]


@pytest.mark.parametrize("kind", ["wait_for_all", "wait_for_any"])
@pytest.mark.parametrize("on_timeout", ["continue", "fail", "cancel"])
async def test_on_timeout(app: tarry.Tarry, clock: VirtualClock, kind: str, on_timeout: str) -> None:
    seen: list[str] = []

    @app.function(trigger="t/start", retries=3)
    async def timing_out(ctx: tarry.Context) -> Any:
        waits = [tarry.Wait(event="t/one"), tarry.Wait(event="t/two")]
        try:
            got = await getattr(ctx.step, kind)("w", waits, timeout="1h", on_timeout=on_timeout)
        except tarry.WaitTimeoutError:
            seen.append("raised")
            raise
        seen.append("returned")
        return ["returned", got]

    async with app:
        run = await start_run(app, tarry.Event("t/start"))
        await clock.advance("59m")
        assert await status(app, run.id) == "waiting"
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    if on_timeout == "continue":
        assert done.status == "completed" and seen == ["returned"]
        assert done.output == ["returned", [None, None] if kind == "wait_for_all" else None]
    elif on_timeout == "fail":
        assert done.status == "failed" and done.error is not None and done.error["name"] == "WaitTimeoutError"
        assert seen == ["raised"], "no retries for a timed-out wait"
    else:
        assert done.status == "cancelled" and seen == []
        assert done.error is not None and done.error["name"] == "Cancelled"
        assert "'w'" in done.error["message"] and "on_timeout" in done.error["message"], "naming what cancelled it"


async def test_events_taken_before_a_wait_for_all_times_out_stay_consumed(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="k/start")
    async def keeper(ctx: tarry.Context) -> Any:
        try:
            await ctx.step.wait_for_all(
                "both", [tarry.Wait(event="k/a"), tarry.Wait(event="k/b")], timeout="1h", on_timeout="fail"
            )
        except tarry.WaitTimeoutError:
            later = await ctx.step.wait_for_event("later", event="k/a", timeout="1h")
            return None if later is None else later.id
        return "not timed out"

    async with app:
        run = await start_run(app, tarry.Event("k/start"))
        await app.send(tarry.Event("k/a", {"n": 1}))
        await clock.advance("1h")
        assert await status(app, run.id) == "waiting", "the event the timed-out step took is not given again"
        [again] = await app.send(tarry.Event("k/a", {"n": 2}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == again


# -- wait_for_any -----------------------------------------------------------------


def refunds(app: tarry.Tarry, executions: list[str], **options: Any) -> None:
    @app.function(trigger="refund/requested")
    async def decide(ctx: tarry.Context) -> Any:
        choice = await ctx.step.wait_for_any("decision", [
            tarry.Wait(event="refund/approved", match="data.refundId"),
            tarry.Wait(event="refund/rejected", match="data.refundId"),
        ], timeout="2d", **options)  # fmt: skip
        executions.append(type(choice).__name__)
        await ctx.step.sleep("settle", "1m")
        if choice is None:
            return None
        index, event = choice
        return {"index": index, "id": event.id, "event": isinstance(event, tarry.Event), "by": event.data["by"]}


async def test_wait_for_any_returns_the_index_and_the_event_as_a_tuple_also_on_replay(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    executions: list[str] = []
    refunds(app, executions)
    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"refundId": "r1"}))
        assert run.status == "waiting"
        await app.send(tarry.Event("refund/approved", {"refundId": "r2", "by": "max"}))
        assert await status(app, run.id) == "waiting"
        [rejected] = await app.send(tarry.Event("refund/rejected", {"refundId": "r1", "by": "lea"}))
        assert await status(app, run.id) == "sleeping"
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == {"index": 1, "id": rejected, "event": True, "by": "lea"}
    assert len(executions) == 2 and set(executions) == {"tuple"}, "a tuple when it resolves and when replayed"
    step = step_of(done, "decision")
    assert step.kind == "wait_for_any" and step.status == "completed"


async def test_wait_for_any_takes_the_oldest_stored_event_and_the_loser_stays_available(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="refund/requested")
    async def decide_late(ctx: tarry.Context) -> Any:
        await ctx.step.sleep("first", "1m")
        choice = await ctx.step.wait_for_any("decision", [
            tarry.Wait(event="refund/approved", match="data.refundId"),
            tarry.Wait(event="refund/rejected", match="data.refundId"),
        ], timeout="2d")  # fmt: skip
        later = await ctx.step.wait_for_event("later", event="refund/approved", match="data.refundId", timeout="1h")
        assert choice is not None
        return [choice[0], choice[1].id, None if later is None else later.id]

    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"refundId": "r1"}))
        [rejected] = await app.send(tarry.Event("refund/rejected", {"refundId": "r1", "by": "lea"}))
        [approved] = await app.send(tarry.Event("refund/approved", {"refundId": "r1", "by": "max"}))
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [1, rejected, approved], "the oldest wins, whatever its index; the other is not consumed"


async def test_wait_for_any_one_event_matching_several_conditions_goes_to_the_lowest_index(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="vote/opened")
    async def weigh(ctx: tarry.Context) -> list[Any]:
        await ctx.step.sleep("first", "1m")
        waits = [tarry.Wait(event="vote/cast", if_exp="async.data.weight > 1"), tarry.Wait(event="vote/cast")]
        got = []
        for step_id in ("stored", "light", "heavy"):
            choice = await ctx.step.wait_for_any(step_id, waits, timeout="1h")
            got.append(None if choice is None else [choice[0], choice[1].data["weight"]])
        return got

    async with app:
        run = await start_run(app, tarry.Event("vote/opened"))
        await app.send(tarry.Event("vote/cast", {"weight": 5}))
        await clock.advance("1m")
        await app.send(tarry.Event("vote/cast", {"weight": 1}))
        assert await status(app, run.id) == "waiting"
        await app.send(tarry.Event("vote/cast", {"weight": 9}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [[0, 5], [1, 1], [0, 9]]


async def test_the_losing_conditions_close_at_once_and_consume_nothing_later(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="refund/requested")
    async def decide_then_listen(ctx: tarry.Context) -> Any:
        choice = await ctx.step.wait_for_any("decision", [
            tarry.Wait(event="refund/approved", match="data.refundId"),
            tarry.Wait(event="refund/rejected", match="data.refundId"),
        ], timeout="2d")  # fmt: skip
        await ctx.step.sleep("pause", "1h")
        later = await ctx.step.wait_for_event("later", event="refund/rejected", match="data.refundId", timeout="1h")
        assert choice is not None
        return [choice[0], choice[1].id, None if later is None else later.id]

    async with app:
        run = await start_run(app, tarry.Event("refund/requested", {"refundId": "r1"}))
        assert len(await open_waits(app, run.id)) == 2
        [approved] = await app.send(tarry.Event("refund/approved", {"refundId": "r1"}))
        assert await status(app, run.id) == "sleeping"
        assert await open_waits(app, run.id) == [], "the other condition closed with the winner"
        [rejected] = await app.send(tarry.Event("refund/rejected", {"refundId": "r1"}))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [0, approved, rejected]


async def test_one_event_resolves_the_wait_for_any_of_every_matching_run(app: tarry.Tarry) -> None:
    executions: list[str] = []
    refunds(app, executions)
    async with app:
        runs = [await start_run(app, tarry.Event("refund/requested", {"refundId": "r1"})) for _ in range(3)]
        other = await start_run(app, tarry.Event("refund/requested", {"refundId": "r2"}))
        await app.send(tarry.Event("refund/approved", {"refundId": "r1", "by": "max"}))
        await app.idle(timeout=LIMIT)
        assert [(await app.get_run(r.id)).status for r in runs] == ["sleeping"] * 3  # type: ignore[union-attr]
        assert await status(app, other.id) == "waiting"


# -- collect_events ---------------------------------------------------------------


def polls(app: tarry.Tarry, **options: Any) -> None:
    @app.function(trigger="poll/opened")
    async def tally(ctx: tarry.Context) -> list[Any]:
        await ctx.step.sleep("open", "1m")
        votes = await ctx.step.collect_events("votes", event="poll/vote.cast", match="data.pollId", timeout="1h",
                                              **options)  # fmt: skip
        assert isinstance(votes, list) and all(isinstance(v, tarry.Event) for v in votes)
        return [v.data["n"] for v in votes]


def vote(poll: str, n: int) -> tarry.Event:
    return tarry.Event("poll/vote.cast", {"pollId": poll, "n": n})


async def test_collect_events_completes_when_count_have_arrived_oldest_first(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    polls(app, count=3)
    async with app:
        run = await start_run(app, tarry.Event("poll/opened", {"pollId": "p1"}))
        await app.send(vote("p1", 1))  # before the step: taken by look-back
        await app.send(vote("p2", 99))
        await clock.advance("1m")
        assert await status(app, run.id) == "waiting"
        await app.send(vote("p1", 2))
        assert await status(app, run.id) == "waiting"
        await app.send([vote("p1", 3), vote("p1", 4)])
        done = await app.wait_for_run(run.id, timeout=LIMIT)  # before the deadline
    assert done.status == "completed" and done.output == [1, 2, 3]
    step = step_of(done, "votes")
    assert step.kind == "collect_events" and step.status == "completed"


async def test_collect_events_returns_what_it_has_at_the_deadline_possibly_nothing(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    polls(app, count=3)
    async with app:
        some = await start_run(app, tarry.Event("poll/opened", {"pollId": "p1"}))
        none = await start_run(app, tarry.Event("poll/opened", {"pollId": "p2"}))
        await clock.advance("1m")
        await app.send([vote("p1", 1), vote("p1", 2)])
        await clock.advance("59m")
        assert await status(app, some.id) == "waiting" and await status(app, none.id) == "waiting"
        await clock.advance("1m")
        done = [await app.wait_for_run(r.id, timeout=LIMIT) for r in (some, none)]
    assert [(d.status, d.output) for d in done] == [("completed", [1, 2]), ("completed", [])], "no error at the end"


async def test_collect_events_without_count_gathers_until_the_deadline(app: tarry.Tarry, clock: VirtualClock) -> None:
    polls(app)
    async with app:
        run = await start_run(app, tarry.Event("poll/opened", {"pollId": "p1"}))
        await clock.advance("1m")
        for n in range(5):
            await app.send(vote("p1", n))
        assert await status(app, run.id) == "waiting"
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("when", ["stored", "arriving"])
async def test_collect_events_stops_at_a_thousand_events(app: tarry.Tarry, clock: VirtualClock, when: str) -> None:
    @app.function(trigger="bulk/start")
    async def gather_all(ctx: tarry.Context) -> dict[str, Any]:
        if when == "stored":  # the events are all sent before the step is reached
            await ctx.step.sleep("open", "1m")
        first = await ctx.step.collect_events("first", event="bulk/item", timeout="1h")
        rest = await ctx.step.collect_events("rest", event="bulk/item", timeout="1m")
        return {"first": [e.data["n"] for e in first], "rest": [e.data["n"] for e in rest]}

    async with app:
        run = await start_run(app, tarry.Event("bulk/start"))
        for chunk in range(0, 1005, 100):
            await app.send([tarry.Event("bulk/item", {"n": n}) for n in range(chunk, min(chunk + 100, 1005))])
        if when == "stored":
            await clock.advance("1m")
        await app.idle(timeout=LIMIT)
        waiting = await app.get_run(run.id)
        assert waiting is not None and waiting.status == "waiting"
        assert step_of(waiting, "first").status == "completed", "the first step stopped at 1,000, before its deadline"
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output["first"] == list(range(1000)), "the oldest 1,000, oldest first"
    assert done.output["rest"] == list(range(1000, 1005)), "the others are left for a later wait"


async def test_collect_events_stops_before_4_mib_of_events(app: tarry.Tarry) -> None:
    @app.function(trigger="big/start")
    async def gather_big(ctx: tarry.Context) -> list[Any]:
        got = await ctx.step.collect_events("big", event="big/blob", timeout="1h")
        later = await ctx.step.wait_for_event("later", event="big/blob", timeout="1h")
        return [[e.data["n"] for e in got], None if later is None else later.data["n"]]

    blob = "x" * 400_000  # ten of them fit in 4 MiB, eleven do not
    async with app:
        run = await start_run(app, tarry.Event("big/start"))
        for n in range(12):
            await app.send(tarry.Event("big/blob", {"n": n, "blob": blob}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed", done.error
    assert done.output == [list(range(10)), 10], "the event that did not fit is not consumed by the full step"


async def test_collect_events_with_a_key_and_an_if_exp(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="bid/opened")
    async def auction(ctx: tarry.Context) -> list[Any]:
        bids = await ctx.step.collect_events(
            "bids", key=f"lot-{ctx.event.data['lot']}", if_exp="async.data.amount > event.data.reserve",
            count=2, timeout="1h",
        )  # fmt: skip
        return [b.data["amount"] for b in bids]

    async with app:
        run = await start_run(app, tarry.Event("bid/opened", {"lot": 7, "reserve": 100}))
        await app.notify("lot-7", {"amount": 50})
        await app.notify("lot-8", {"amount": 500})
        await app.notify("lot-7", {"amount": 150})
        assert await status(app, run.id) == "waiting"
        await app.send(tarry.Event("bid/placed", {"amount": 300}, key="lot-7"))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [150, 300]


async def test_a_condition_with_a_list_of_event_names_takes_any_of_them(app: tarry.Tarry) -> None:
    @app.function(trigger="n/start")
    async def named(ctx: tarry.Context) -> list[Any]:
        got = await ctx.step.wait_for_all("both", [
            tarry.Wait(event=["n/replied", "n/closed"], match="data.ticket"),
            tarry.Wait("n/billed", match="data.ticket"),  # the name may be given by position, the rest by keyword
        ], timeout="1h")  # fmt: skip
        return [None if e is None else e.name for e in got]

    with pytest.raises(TypeError):
        tarry.Wait("n/billed", "data.ticket")  # type: ignore[misc]

    async with app:
        run = await start_run(app, tarry.Event("n/start", {"ticket": 3}))
        await app.send(tarry.Event("n/closed", {"ticket": 3}))
        await app.send(tarry.Event("n/replied", {"ticket": 3}))
        assert await status(app, run.id) == "waiting"
        await app.send(tarry.Event("n/billed", {"ticket": 3}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == ["n/closed", "n/billed"]


async def test_a_wait_for_all_whose_events_pass_4_mib_raises_a_step_error(app: tarry.Tarry) -> None:
    @app.function(trigger="huge/start")
    async def huge(ctx: tarry.Context) -> Any:
        try:
            await ctx.step.wait_for_all("nine", [tarry.Wait(event=f"huge/{n}") for n in range(9)], timeout="1h")
        except tarry.StepError as err:
            return [err.name, err.message]
        return "returned"

    blob = "x" * 500_000  # nine of them: over 4 MiB
    async with app:
        run = await start_run(app, tarry.Event("huge/start"))
        for n in range(9):
            await app.send(tarry.Event(f"huge/{n}", {"blob": blob}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed" and done.output[0] == "ValueError", done.output
    assert "nine" in done.output[1], "the message names the step"


async def test_every_matching_run_collects_one_event_a_duplicate_is_not_collected_a_delayed_one_at_its_time(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    polls(app)
    async with app:
        runs = [await start_run(app, tarry.Event("poll/opened", {"pollId": "p1"})) for _ in range(2)]
        await clock.advance("1m")
        await app.send(tarry.Event("poll/vote.cast", {"pollId": "p1", "n": 1}, id="vote-1"))
        await app.send(tarry.Event("poll/vote.cast", {"pollId": "p1", "n": 1}, id="vote-1"))  # deduplicated
        await app.send(tarry.Event("poll/vote.cast", {"pollId": "p1", "n": 2}, ts=clock.now_ms() + 30 * 60_000))
        await clock.advance("59m")
        await clock.advance("1m")
        done = [await app.wait_for_run(r.id, timeout=LIMIT) for r in runs]
    assert [d.output for d in done] == [[1, 2], [1, 2]]


# -- which condition takes an event -----------------------------------------------


async def test_stored_events_are_taken_in_condition_order_each_the_oldest_it_matches(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="v/start")
    async def ordered(ctx: tarry.Context) -> list[Any]:
        await ctx.step.sleep("first", "1m")
        got = await ctx.step.wait_for_all("two", [
            tarry.Wait(event="v/x", if_exp="async.data.n >= 2"),
            tarry.Wait(event="v/x"),
        ], timeout="1h")  # fmt: skip
        later = await ctx.step.wait_for_event("later", event="v/x", timeout="1h")
        return [[None if e is None else e.data["n"] for e in got], None if later is None else later.data["n"]]

    async with app:
        run = await start_run(app, tarry.Event("v/start"))
        for n in (1, 2, 3):
            await app.send(tarry.Event("v/x", {"n": n}))
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [[2, 1], 3]


async def test_an_arriving_event_goes_to_the_first_open_condition_it_matches_and_fills_one(app: tarry.Tarry) -> None:
    @app.function(trigger="v/start")
    async def arriving(ctx: tarry.Context) -> list[Any]:
        got = await ctx.step.wait_for_all("two", [
            tarry.Wait(event="v/x"),
            tarry.Wait(event="v/x", if_exp="async.data.n >= 2"),
        ], timeout="1h")  # fmt: skip
        later = await ctx.step.wait_for_event("later", event="v/x", timeout="1h")
        return [[None if e is None else e.data["n"] for e in got], None if later is None else later.data["n"]]

    async with app:
        run = await start_run(app, tarry.Event("v/start"))
        await app.send(tarry.Event("v/x", {"n": 5}))
        assert await status(app, run.id) == "waiting", "one event satisfies one condition, the first open one"
        [left] = await open_waits(app, run.id)
        assert left["condition"] == 1
        await app.send(tarry.Event("v/x", {"n": 1}))
        assert await status(app, run.id) == "waiting"
        await app.send(tarry.Event("v/x", {"n": 2}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [[5, 2], 1]


@pytest.mark.parametrize("first", KINDS)
async def test_among_gathered_waits_an_arriving_event_goes_to_the_step_called_first(
    app: tarry.Tarry, first: str
) -> None:
    @app.function(trigger="g/start")
    async def gathered(ctx: tarry.Context) -> dict[str, Any]:
        if first == "wait_for_all":
            several = ctx.step.wait_for_all("several", [tarry.Wait(event="g/x"), tarry.Wait(event="g/y")],
                                            timeout="1h")  # fmt: skip
        elif first == "wait_for_any":
            several = ctx.step.wait_for_any("several", [tarry.Wait(event="g/z"), tarry.Wait(event="g/x")],
                                            timeout="1h")  # fmt: skip
        else:
            several = ctx.step.collect_events("several", event="g/x", count=1, timeout="1h")
        many, single = await asyncio.gather(several, ctx.step.wait_for_event("single", event="g/x", timeout="1h"))
        if first == "wait_for_any":
            many = [many[0], many[1].data["n"]]
        else:
            many = [None if e is None else e.data["n"] for e in many]
        return {"several": many, "single": None if single is None else single.data["n"]}

    async with app:
        run = await start_run(app, tarry.Event("g/start"))
        await app.send(tarry.Event("g/x", {"n": 1}))
        if first == "wait_for_all":
            await app.send(tarry.Event("g/y", {"n": "y"}))
        assert await status(app, run.id) == "waiting"
        await app.send(tarry.Event("g/x", {"n": 2}))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    expected = {"wait_for_all": [1, "y"], "wait_for_any": [1, 1], "collect_events": [1]}[first]
    assert done.output == {"several": expected, "single": 2}


async def test_among_gathered_waits_a_stored_event_goes_to_the_step_called_first(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="g/start")
    async def gathered_late(ctx: tarry.Context) -> list[Any]:
        await ctx.step.sleep("first", "1m")
        single, choice, votes = await asyncio.gather(
            ctx.step.wait_for_event("single", event="g/x", timeout="1h"),
            ctx.step.wait_for_any("choice", [tarry.Wait(event="g/x")], timeout="1h"),
            ctx.step.collect_events("votes", event="g/x", count=2, timeout="1h"),
        )
        assert single is not None and choice is not None
        return [single.data["n"], choice[1].data["n"], [v.data["n"] for v in votes]]

    async with app:
        run = await start_run(app, tarry.Event("g/start"))
        for n in range(1, 5):
            await app.send(tarry.Event("g/x", {"n": n}))
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [1, 2, [3, 4]]


# -- consumed at most once per run -----------------------------------------------


async def test_each_event_is_consumed_at_most_once_per_run_across_the_kinds(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="c/start")
    async def consume(ctx: tarry.Context) -> list[Any]:
        await ctx.step.sleep("first", "1m")
        one = await ctx.step.wait_for_event("one", event="c/x", timeout="1h")
        two = await ctx.step.wait_for_all("two", [tarry.Wait(event="c/x"), tarry.Wait(event="c/x")], timeout="1h")
        three = await ctx.step.wait_for_any("three", [tarry.Wait(event="c/x")], timeout="1h")
        four = await ctx.step.collect_events("four", event="c/x", timeout="1h")
        assert one is not None and three is not None
        return [one.data["n"], [e.data["n"] for e in two if e], three[1].data["n"], [e.data["n"] for e in four]]

    async with app:
        run = await start_run(app, tarry.Event("c/start"))
        await app.send([tarry.Event("c/x", {"n": n}) for n in range(1, 7)])
        await clock.advance("1m")
        assert await status(app, run.id) == "waiting"
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [1, [2, 3], 4, [5, 6]]


async def test_lookback_none_and_a_span_apply_to_every_condition(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="l/start")
    async def looking(ctx: tarry.Context) -> list[Any]:
        await ctx.step.sleep("first", "2h")
        live = await ctx.step.wait_for_any("live", [tarry.Wait(event="l/a"), tarry.Wait(event="l/b")],
                                           timeout="1m", lookback=None)  # fmt: skip
        recent = await ctx.step.wait_for_all("recent", [tarry.Wait(event="l/a"), tarry.Wait(event="l/b")],
                                             timeout="1m", lookback="1h")  # fmt: skip
        some = await ctx.step.collect_events("some", event="l/a", timeout="1m", lookback="30m")
        return [live, [None if e is None else e.data["n"] for e in recent], [e.data["n"] for e in some]]

    async with app:
        run = await start_run(app, tarry.Event("l/start"))
        await app.send([tarry.Event("l/a", {"n": "old"}), tarry.Event("l/b", {"n": "old"})])
        await clock.advance("90m")
        await app.send(tarry.Event("l/a", {"n": "recent"}))
        await clock.advance("30m")  # the first step ends; live looks at nothing stored
        assert await status(app, run.id) == "waiting"
        await clock.advance("1m")  # live times out; recent takes the one l/a of the last hour
        await clock.advance("1m")  # recent times out; some finds nothing left within 30 minutes
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [None, ["recent", None], []]


# -- the waits API, status, sync twins -------------------------------------------


async def test_the_waits_api_lists_each_open_condition_with_its_index_and_kind(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    kyc_and_payment(app)
    executions: list[str] = []
    refunds(app, executions)
    polls(app, count=2)
    reached = clock.now()
    async with app:
        order = await start_run(app, ORDER)
        refund = await start_run(app, tarry.Event("refund/requested", {"refundId": "r1"}))
        poll = await start_run(app, tarry.Event("poll/opened", {"pollId": "p1"}))
        await clock.advance("1m")
        assert {await status(app, r.id) for r in (order, refund, poll)} == {"waiting"}
        listed = await open_waits(app)
        by_run: dict[str, list[dict[str, Any]]] = {}
        for wait in listed:
            by_run.setdefault(wait["run_id"], []).append(wait)

        waits = sorted(by_run[order.id], key=lambda w: w["condition"])
        assert [(w["condition"], w["kind"], w["step_id"]) for w in waits] == [
            (0, "wait_for_all", "kyc-and-payment"), (1, "wait_for_all", "kyc-and-payment"),
        ]  # fmt: skip
        assert waits[0]["events"] == ["kyc/document.verified"] and waits[0]["match"] == {"data.userId": "u1"}
        assert waits[1]["events"] == ["billing/payment.succeeded"] and waits[1]["match"] == {"key": "order-o1"}
        assert waits[0]["until"] == waits[1]["until"] and waits[0]["until"] is not None, "one deadline"
        until = datetime.fromisoformat(waits[0]["until"].replace("Z", "+00:00"))
        assert abs(until - (reached + timedelta(days=3))) < timedelta(seconds=1), "3 days after the step was reached"

        waits = sorted(by_run[refund.id], key=lambda w: w["condition"])
        assert [(w["condition"], w["kind"]) for w in waits] == [(0, "wait_for_any"), (1, "wait_for_any")]
        assert [w["events"] for w in waits] == [["refund/approved"], ["refund/rejected"]]

        [wait] = by_run[poll.id]
        assert (wait["condition"], wait["kind"], wait["events"]) == (0, "collect_events", ["poll/vote.cast"])
        assert wait["match"] == {"data.pollId": "p1"}

        await app.send(tarry.Event("kyc/document.verified", {"userId": "u1"}))
        await app.send(vote("p1", 1))
        await app.idle(timeout=LIMIT)
        [left] = await open_waits(app, order.id)
        assert left["condition"] == 1, "a satisfied condition is no longer listed"
        [still] = await open_waits(app, poll.id)
        assert still["condition"] == 0, "a collect_events short of its count still waits"
        assert await status(app, order.id) == "waiting" and await status(app, poll.id) == "waiting"


async def test_the_sync_twins_in_a_plain_def_function(app: tarry.Tarry) -> None:
    @app.function(trigger="sync/start")
    def plain(ctx: tarry.Context) -> list[Any]:
        ready = ctx.step.wait_for_all_sync(
            "all", [tarry.Wait(event="sync/a"), tarry.Wait(event="sync/b", match="data.id")], timeout="1h"
        )
        choice = ctx.step.wait_for_any_sync("any", [tarry.Wait(event="sync/c"), tarry.Wait(key="k-1")], timeout="1h")
        votes = ctx.step.collect_events_sync("collect", event="sync/v", count=2, timeout="1h")
        assert choice is not None
        return [[e.name if e else None for e in ready], [choice[0], choice[1].name], [v.data["n"] for v in votes]]

    async with app:
        run = await start_run(app, tarry.Event("sync/start", {"id": 7}))
        await app.send([tarry.Event("sync/b", {"id": 7}), tarry.Event("sync/a")])
        assert await status(app, run.id) == "waiting"
        await app.notify("k-1")
        assert await status(app, run.id) == "waiting"
        await app.send([tarry.Event("sync/v", {"n": 1}), tarry.Event("sync/v", {"n": 2})])
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == [["sync/a", "sync/b"], [1, "tarry/notify"], [1, 2]]
    assert [s.kind for s in done.steps] == list(KINDS)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_sync_twin_inside_an_async_function_is_a_clear_error(app: tarry.Tarry, kind: str) -> None:
    @app.function(trigger="mixed")
    async def mixed(ctx: tarry.Context) -> None:
        if kind == "collect_events":
            ctx.step.collect_events_sync("x", event="e", timeout="1h")
        else:
            getattr(ctx.step, kind + "_sync")("x", [tarry.Wait(event="e")], timeout="1h")

    async with app:
        run = await start_run(app, tarry.Event("mixed"))
    assert run.status == "failed" and run.error is not None and f"await ctx.step.{kind}" in run.error["message"]


# -- restarts, cancelling ------------------------------------------------------


def recorded(app: tarry.Tarry, executions: list[int]) -> None:
    @app.function(trigger="r/start")
    async def remember(ctx: tarry.Context) -> dict[str, Any]:
        executions.append(1)
        ready = await ctx.step.wait_for_all("all", [tarry.Wait(event="r/a"), tarry.Wait(event="r/b")], timeout="1d")
        choice = await ctx.step.wait_for_any("any", [tarry.Wait(event="r/c"), tarry.Wait(event="r/d")], timeout="1d")
        votes = await ctx.step.collect_events("collect", event="r/v", count=3, timeout="1d")
        await ctx.step.sleep("after", "1d")
        assert choice is not None
        return {"all": ids(ready), "any": [type(choice).__name__, choice[0], choice[1].id], "collect": ids(votes)}


async def test_a_restart_replays_the_recorded_results_without_waiting_again(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    executions: list[int] = []
    first = make_app()
    recorded(first, executions)
    async with first:
        run = await start_run(first, tarry.Event("r/start"))
        [a] = await first.send(tarry.Event("r/a"))
        [b] = await first.send(tarry.Event("r/b"))
        [d] = await first.send(tarry.Event("r/d"))
        v = await first.send([tarry.Event("r/v", {"n": n}) for n in range(3)])
        assert await status(first, run.id) == "sleeping"

    executions.clear()
    second = make_app()
    recorded(second, executions)
    async with second:
        await clock.advance("1d")
        done = await second.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed"
    assert done.output == {"all": [a, b], "any": ["tuple", 1, d], "collect": v}
    assert [s.id for s in done.steps] == ["all", "any", "collect", "after"], "each recorded once"
    assert len(executions) == 1, "the second app executed the function once, after the sleep, and never waited"


async def test_a_restart_in_the_middle_of_a_step_keeps_what_it_has_taken(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    executions: list[int] = []
    first = make_app()
    recorded(first, executions)
    async with first:
        run = await start_run(first, tarry.Event("r/start"))
        [a] = await first.send(tarry.Event("r/a"))
        assert await status(first, run.id) == "waiting"

    second = make_app()
    recorded(second, executions)
    async with second:
        assert await status(second, run.id) == "waiting"
        [b] = await second.send(tarry.Event("r/b"))
        [c] = await second.send(tarry.Event("r/c"))
        v1 = await second.send(tarry.Event("r/v", {"n": 1}))
        assert await status(second, run.id) == "waiting"

    third = make_app()
    recorded(third, executions)
    async with third:
        v2 = await third.send([tarry.Event("r/v", {"n": 2}), tarry.Event("r/v", {"n": 3})])
        assert await status(third, run.id) == "sleeping"
        await clock.advance("1d")
        done = await third.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == {"all": [a, b], "any": ["tuple", 0, c], "collect": v1 + v2}


async def test_a_rerun_keeps_a_recorded_step_and_one_from_it_looks_back_from_the_original_trigger(
    app: tarry.Tarry,
) -> None:
    @app.function(trigger="shop/order.placed")
    async def fulfil_then_ship(ctx: tarry.Context) -> list[Any]:
        ready = await ctx.step.wait_for_all("kyc-and-payment", [
            tarry.Wait(event="kyc/document.verified", match="data.userId"),
            tarry.Wait(event="billing/payment.succeeded", key=f"order-{ctx.event.data['orderId']}"),
        ], timeout="3d")  # fmt: skip
        shipped = await ctx.step.run("ship", lambda: "shipped")
        return [ids(ready), shipped]

    async with app:
        run = await start_run(app, ORDER)
        [kyc] = await app.send(tarry.Event("kyc/document.verified", {"userId": "u1"}))
        [payment] = await app.send(tarry.Event("billing/payment.succeeded", key="order-o1"))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        kept = await app.wait_for_run(await app.rerun(run.id, from_step="ship"), timeout=LIMIT)
        again = await app.wait_for_run(await app.rerun(run.id, from_step="kyc-and-payment"), timeout=LIMIT)
    assert done.output == [[kyc, payment], "shipped"]
    assert kept.output == done.output, "the recorded step keeps its events"
    assert again.output == done.output, "run anew, it looks back from the original trigger"


async def test_a_deadline_that_passed_while_no_worker_ran_fires_when_one_comes_back(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    first = make_app()
    kyc_and_payment(first)
    async with first:
        run = await start_run(first, ORDER)
        [kyc] = await first.send(tarry.Event("kyc/document.verified", {"userId": "u1"}))
        assert await status(first, run.id) == "waiting"
    await clock.advance("4d")
    second = make_app()
    kyc_and_payment(second)
    async with second:
        await clock.advance("1s")
        done = await second.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "completed" and done.output["ids"] == [kyc, None]


@pytest.mark.parametrize("how", ["cancel_run", "cancel_on"])
@pytest.mark.parametrize("kind", KINDS)
async def test_cancelling_a_run_in_the_step_closes_every_condition(
    app: tarry.Tarry, clock: VirtualClock, kind: str, how: str
) -> None:
    reached: list[str] = []

    @app.function(trigger="x/start", cancel_on=[tarry.CancelOn(event="x/stop")])
    async def cancellable(ctx: tarry.Context) -> str:
        waits = [tarry.Wait(event="x/a"), tarry.Wait(event="x/b")]
        if kind == "collect_events":
            await ctx.step.collect_events("w", event="x/a", count=2, timeout="1h")
        else:
            await getattr(ctx.step, kind)("w", waits, timeout="1h")
        reached.append("after")
        return "done"

    async with app:
        run = await start_run(app, tarry.Event("x/start"))
        if kind != "wait_for_any":  # one event of two taken: cancelled in the middle of the step
            await app.send(tarry.Event("x/a"))
        assert await status(app, run.id) == "waiting"
        if how == "cancel_run":
            assert await app.cancel_run(run.id) is True
        else:
            await app.send(tarry.Event("x/stop"))
        cancelled = await app.wait_for_run(run.id, timeout=LIMIT)
        assert await open_waits(app, run.id) == []
        await app.send([tarry.Event("x/a"), tarry.Event("x/b")])
        await clock.advance("1h")
        after = await app.get_run(run.id)
    assert cancelled.status == "cancelled" and cancelled.error is not None
    assert ("cancel_run" if how == "cancel_run" else "x/stop") in cancelled.error["message"], cancelled.error
    assert after is not None and after.status == "cancelled" and after.error == cancelled.error
    assert reached == []


# -- bad input -------------------------------------------------------------------

INDEXED = re.compile(r"(\[2\]|\b(index|condition|wait|waits|#)\s*2\b)", re.IGNORECASE)
# (a condition built at the call, what the message must contain besides the index); the bad one is third
BAD_CONDITIONS: dict[str, tuple[Callable[[], Any], tuple[str, ...]]] = {
    "neither-event-nor-key": (lambda: tarry.Wait(), ("event", "key")),
    "bad-match": (lambda: tarry.Wait(event="e", match="userId"), ("match",)),
    "bad-if-exp": (lambda: tarry.Wait(event="e", if_exp="async.data.x =="), ("ExpressionError", "async.data.x ==")),
    "unknown-name": (lambda: tarry.Wait(event="e", if_exp="order.id == async.data.id"), ("ExpressionError", "order")),
    "empty-key": (lambda: tarry.Wait(key=""), ("key",)),
    "bad-event": (lambda: tarry.Wait(event=[]), ("event",)),
    "not-a-wait": (lambda: {"event": "e"}, ("Wait",)),
}
# (options besides the waits [one good condition], what the message must contain)
BAD_OPTIONS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "empty": ({"waits": [], "timeout": "1h"}, ()),
    "bad-timeout": ({"timeout": "1 month"}, ("timeout", "'1 month'")),
    "negative-timeout": ({"timeout": -1}, ("timeout",)),
    "too-long-timeout": ({"timeout": "400d"}, ("timeout",)),
    "bad-on-timeout": ({"timeout": "1h", "on_timeout": "explode"}, ("on_timeout", "'explode'")),
    "bad-lookback": ({"timeout": "1h", "lookback": "forever"}, ("lookback",)),
    "missing-timeout": ({}, ("timeout",)),
}
BAD_COLLECTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "neither-event-nor-key": ({"count": 1, "timeout": "1h"}, ("event", "key")),
    "count-zero": ({"event": "e", "count": 0, "timeout": "1h"}, ("count",)),
    "count-negative": ({"event": "e", "count": -3, "timeout": "1h"}, ("count",)),
    "count-text": ({"event": "e", "count": "3", "timeout": "1h"}, ("count",)),
    "count-float": ({"event": "e", "count": 2.5, "timeout": "1h"}, ("count",)),
    "count-bool": ({"event": "e", "count": True, "timeout": "1h"}, ("count",)),
    "bad-match": ({"event": "e", "match": "userId", "timeout": "1h"}, ("match",)),
    "bad-if-exp": ({"event": "e", "if_exp": "async.data.x ==", "timeout": "1h"}, ("ExpressionError",)),
    "empty-key": ({"key": "", "timeout": "1h"}, ("key",)),
    "bad-timeout": ({"event": "e", "timeout": "1 month"}, ("timeout", "'1 month'")),
    "negative-timeout": ({"event": "e", "timeout": -1}, ("timeout",)),
    "bad-lookback": ({"event": "e", "timeout": "1h", "lookback": "forever"}, ("lookback",)),
    "missing-timeout": ({"event": "e"}, ("timeout",)),
}


@pytest.mark.parametrize("kind", KINDS)
async def test_bad_input_is_refused_at_the_call_naming_the_condition_and_nothing_is_registered(
    app: tarry.Tarry, kind: str
) -> None:
    """Every case is tried in one run; the failures of all of them are reported together."""
    failures: list[str] = []

    def check(case: str, err: BaseException | None, needles: tuple[str, ...], indexed: bool) -> None:
        if err is None:
            failures.append(f"{case}: accepted")
            return
        text = f"{type(err).__name__}: {err}"
        if not isinstance(err, ValueError | TypeError):
            failures.append(f"{case}: raised {text}")
        missing = [n for n in needles if n not in text]
        if missing:
            failures.append(f"{case}: {text!r} does not say {missing}")
        if indexed and not INDEXED.search(text):
            failures.append(f"{case}: {text!r} does not name the condition's index (2)")

    async def attempt(call: Callable[[], Any]) -> BaseException | None:
        try:
            await call()
        except Exception as err:
            return err
        return None

    @app.function(trigger="bad/start")
    async def bad(ctx: tarry.Context) -> str:
        ok = tarry.Wait(event="ok/a")
        if kind == "collect_events":
            for case, (options, needles) in BAD_COLLECTS.items():
                err = await attempt(lambda o=options, c=case: ctx.step.collect_events(c, **o))
                check(case, err, needles, indexed=False)
            return "went on"
        method = getattr(ctx.step, kind)
        for case, (build, needles) in BAD_CONDITIONS.items():
            try:
                condition = build()
            except Exception as err:
                failures.append(
                    f"{case}: {type(err).__name__}: {err} raised when building the condition, not at the call"
                )
                continue
            err = await attempt(lambda c=case, w=condition: method(c, [ok, ok, w], timeout="1h"))
            check(case, err, needles, indexed=True)
        for case, (options, needles) in BAD_OPTIONS.items():
            rest = {k: v for k, v in options.items() if k != "waits"}
            waits = options.get("waits", [ok])
            err = await attempt(lambda c=case, w=waits, r=rest: method(c, w, **r))
            check(case, err, needles, indexed=False)
        return "went on"

    async with app:
        run = await start_run(app, tarry.Event("bad/start"))
        listed = await open_waits(app)
    assert run.status == "completed" and run.output == "went on", run.error
    assert not failures, "\n".join(failures)
    assert run.steps == [], "nothing of a refused step is stored"
    assert listed == [], "nothing of a refused step is registered"


# -- racing events ------------------------------------------------------------------


def test_two_events_racing_for_one_step_one_wins_a_wait_for_any_and_both_complete_the_others(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    app = make_app()
    duel(app)
    trials = 80
    sent: dict[str, dict[int, str]] = {name: {} for name in NAMES}
    barrier = threading.Barrier(2, timeout=LIMIT)

    def sender(name: str) -> None:
        for n in range(trials):
            barrier.wait()  # both events of trial n are sent at one moment
            [sent[name][n]] = app.send_sync(tarry.Event(name, {"n": n}))

    async def scenario() -> None:
        async with app:
            await app.send([start for n in range(trials) for start in starts(n)])
            await app.idle(timeout=LIMIT)
            assert len(await app.list_runs(status="waiting", limit=1000)) == trials * len(STARTS)
            threads = [threading.Thread(target=sender, args=(name,)) for name in sent]
            for thread in threads:
                thread.start()
            await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join(LIMIT * 3) for t in threads])
            await app.idle(timeout=LIMIT)
            runs = await app.list_runs(limit=1000)
            assert len(runs) == trials * len(STARTS)
            check([await app.wait_for_run(r.id, timeout=LIMIT) for r in runs], sent)

    asyncio.run(scenario())
