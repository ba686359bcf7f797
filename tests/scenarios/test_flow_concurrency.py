"""Flow control, concurrency (API §9): how many runs of a partition execute at once, which partitions are
shared, what holds a slot, and in which order queued runs start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run
from tests.scenarios.gates import Gate, all_queued, one_run


def gated(app: tarry.Tarry, gate: Gate, *, trigger: str = "job/run", function_id: str = "job", **flow: Any) -> None:
    """A function whose one step stays in ``gate`` (named by ``data.name``)."""

    @app.function(trigger=trigger, id=function_id, **flow)
    async def job(ctx: tarry.Context) -> str:
        return str(await ctx.step.run("work", gate.hold, ctx.event.data["name"]))


def named(trigger: str, *names: str, **data: Any) -> list[tarry.Event]:
    return [tarry.Event(trigger, {"name": name, **data}) for name in names]


async def test_at_most_limit_runs_execute_at_once_and_the_others_wait_queued(app: tarry.Tarry) -> None:
    gate = Gate()
    gated(app, gate, concurrency=tarry.Concurrency(limit=2))
    async with app:
        ids = await app.send(named("job/run", "r0", "r1", "r2", "r3", "r4"))
        await gate.reached(2)
        await gate.stays(2)
        assert set(gate.entered) == {"r0", "r1"}, "ties start in arrival order"
        runs = [await one_run(app, i) for i in ids]
        assert [r.status for r in runs] == ["running", "running", "queued", "queued", "queued"]
        assert [r.queued_reason for r in runs] == [None, None, "concurrency", "concurrency", "concurrency"]
        gate.open()
        done = [await app.wait_for_run(r.id, timeout=LIMIT) for r in runs]
    assert [r.output for r in done] == ["r0", "r1", "r2", "r3", "r4"]
    assert all(r.queued_reason is None for r in done)
    assert gate.most == 2 and sorted(gate.entered) == ["r0", "r1", "r2", "r3", "r4"]


async def test_a_key_gives_each_partition_its_own_limit(app: tarry.Tarry) -> None:
    gate = Gate()
    gated(app, gate, concurrency=tarry.Concurrency(limit=1, key="event.data.customer"))
    async with app:
        ids = await app.send([tarry.Event("job/run", {"name": "a1", "customer": "ada"}),
                              tarry.Event("job/run", {"name": "a2", "customer": "ada"}),
                              tarry.Event("job/run", {"name": "b1", "customer": "bob"})])  # fmt: skip
        await gate.reached(2)
        await gate.stays(2)
        assert sorted(gate.entered) == ["a1", "b1"]
        second = await one_run(app, ids[1])
        assert second.status == "queued" and second.queued_reason == "concurrency"
        gate.open("a1")
        await gate.reached(3)
        assert gate.entered[2] == "a2"
        gate.open()
        for event_id in ids:
            assert (await app.wait_for_run((await one_run(app, event_id)).id, timeout=LIMIT)).status == "completed"


async def test_scope_app_shares_the_partition_and_each_function_keeps_its_own_limit(app: tarry.Tarry) -> None:
    gate = Gate()
    shared = '"openai"'
    gated(app, gate, trigger="ai/summarise", function_id="summarise",
          concurrency=tarry.Concurrency(limit=1, key=shared, scope="app"))  # fmt: skip
    gated(app, gate, trigger="ai/translate", function_id="translate",
          concurrency=tarry.Concurrency(limit=2, key=shared, scope="app"))  # fmt: skip
    async with app:
        await app.send(named("ai/translate", "t1"))
        await gate.reached(1)
        [summary] = await app.send(named("ai/summarise", "s1"))
        await gate.stays(1)
        held = await one_run(app, summary)
        assert held.status == "queued" and held.queued_reason == "concurrency", "1 of the shared count is not below 1"
        await app.send(named("ai/translate", "t2"))
        await gate.reached(2)  # 1 is below translate's own limit of 2
        [third] = await app.send(named("ai/translate", "t3"))
        await gate.stays(2)
        assert (await one_run(app, third)).queued_reason == "concurrency"
        assert sorted(gate.entered) == ["t1", "t2"]
        gate.open("t1")
        await gate.reached(3)  # the shared count is 1 again: below translate's 2, not below summarise's 1
        await gate.stays(3)
        assert gate.entered[2] == "t3" and (await one_run(app, summary)).status == "queued"
        gate.open("t2")
        gate.open("t3")
        await gate.reached(4)
        gate.open()
        done = await app.wait_for_run((await one_run(app, summary)).id, timeout=LIMIT)
    assert done.output == "s1" and gate.most == 2


async def test_scope_app_with_a_key_over_event_data_shares_one_partition_per_value(app: tarry.Tarry) -> None:
    gate = Gate()
    per_tenant = tarry.Concurrency(limit=1, key="event.data.tenant", scope="app")
    gated(app, gate, trigger="a/run", function_id="export", concurrency=per_tenant)
    gated(app, gate, trigger="b/run", function_id="import", concurrency=per_tenant)
    async with app:
        await app.send(named("a/run", "export-t1", tenant="t1"))
        await gate.reached(1)
        [blocked] = await app.send(named("b/run", "import-t1", tenant="t1"))
        await app.send(named("b/run", "import-t2", tenant="t2"))
        await gate.reached(2)
        await gate.stays(2)
        assert sorted(gate.entered) == ["export-t1", "import-t2"]
        assert (await one_run(app, blocked)).queued_reason == "concurrency"
        gate.open()
        assert (await app.wait_for_run((await one_run(app, blocked)).id, timeout=LIMIT)).output == "import-t1"


async def test_scope_function_with_the_same_key_text_shares_nothing(app: tarry.Tarry) -> None:
    gate = Gate()
    gated(app, gate, trigger="a/run", function_id="first", concurrency=tarry.Concurrency(limit=1, key='"x"'))
    gated(app, gate, trigger="b/run", function_id="second", concurrency=tarry.Concurrency(limit=1, key='"x"'))
    async with app:
        ids = await app.send(named("a/run", "a1", "a2") + named("b/run", "b1"))
        await gate.reached(2)
        await gate.stays(2)
        assert sorted(gate.entered) == ["a1", "b1"]
        assert (await one_run(app, ids[1])).queued_reason == "concurrency"
        gate.open()
        assert (await app.wait_for_run((await one_run(app, ids[1])).id, timeout=LIMIT)).output == "a2"


async def test_scope_app_compares_the_key_text_exactly(app: tarry.Tarry) -> None:
    gate = Gate()
    for trigger, function_id, key in (("a/run", "double", '"openai"'), ("b/run", "single", "'openai'"),
                                      ("c/run", "same", '"openai"')):  # fmt: skip
        gated(app, gate, trigger=trigger, function_id=function_id,
              concurrency=tarry.Concurrency(limit=1, key=key, scope="app"))  # fmt: skip
    async with app:
        await app.send(named("a/run", "a") + named("b/run", "b"))
        await gate.reached(2)  # one value, but two texts: two partitions
        [same] = await app.send(named("c/run", "c"))
        await gate.stays(2)
        assert (await one_run(app, same)).queued_reason == "concurrency"
        gate.open()
        assert (await app.wait_for_run((await one_run(app, same)).id, timeout=LIMIT)).output == "c"


async def test_two_limits_both_hold(app: tarry.Tarry) -> None:
    gate = Gate()
    gated(app, gate, concurrency=[tarry.Concurrency(limit=2), tarry.Concurrency(limit=1, key="event.data.user")])
    async with app:
        ids = await app.send([tarry.Event("job/run", {"name": "a", "user": "u1"}),
                              tarry.Event("job/run", {"name": "b", "user": "u1"}),
                              tarry.Event("job/run", {"name": "c", "user": "u2"}),
                              tarry.Event("job/run", {"name": "d", "user": "u3"})])  # fmt: skip
        await gate.reached(2)
        await gate.stays(2)
        assert sorted(gate.entered) == ["a", "c"], "b waits for u1's slot, d for the function's"
        runs = [await one_run(app, i) for i in ids]
        assert [r.queued_reason for r in runs] == [None, "concurrency", None, "concurrency"]
        gate.open("c")
        await gate.reached(3)
        await gate.stays(3)
        assert gate.entered[2] == "d", "u1 still has a run executing"
        gate.open()
        done = [await app.wait_for_run(r.id, timeout=LIMIT) for r in runs]
    assert [r.output for r in done] == ["a", "b", "c", "d"] and gate.most == 2


async def test_gathered_steps_of_one_run_take_one_slot(app: tarry.Tarry) -> None:
    gate = Gate()

    @app.function(trigger="job/run", concurrency=tarry.Concurrency(limit=1))
    async def fan_out(ctx: tarry.Context) -> list[str]:
        name = ctx.event.data["name"]
        return list(await asyncio.gather(ctx.step.run("left", gate.hold, f"{name}-left"),
                                         ctx.step.run("right", gate.hold, f"{name}-right")))  # fmt: skip

    async with app:
        ids = await app.send(named("job/run", "a", "b"))
        await gate.reached(2)
        await gate.stays(2)
        assert sorted(gate.entered) == ["a-left", "a-right"]
        assert (await one_run(app, ids[1])).queued_reason == "concurrency"
        gate.open()
        done = await app.wait_for_run((await one_run(app, ids[1])).id, timeout=LIMIT)
    assert done.output == ["b-left", "b-right"] and gate.most == 2


@pytest.mark.parametrize("park", ["sleep", "wait", "backoff"])
async def test_a_sleeping_waiting_or_backing_off_run_holds_no_slot(
    app: tarry.Tarry, clock: VirtualClock, park: str
) -> None:
    gate = Gate()
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise tarry.RetryAfterError("busy", "1h")
        return "ok"

    @app.function(trigger="job/run", concurrency=tarry.Concurrency(limit=1))
    async def job(ctx: tarry.Context) -> str:
        if ctx.event.data.get("park"):
            if park == "sleep":
                await ctx.step.sleep("nap", "1h")
            elif park == "wait":
                await ctx.step.wait_for_event("wait", event="job/go", timeout="1d")
            else:
                await ctx.step.run("flaky", flaky)
            return "parked"
        return str(await ctx.step.run("work", gate.hold, ctx.event.data["name"]))

    async with app:
        parked = await start_run(app, tarry.Event("job/run", {"name": "parked", "park": True}))
        assert parked.status == ("waiting" if park == "wait" else "sleeping")
        ids = await app.send(named("job/run", "o1", "o2"))
        await gate.reached(1)  # the parked run does not hold the only slot
        await gate.stays(1)  # ...which the run in the gate does
        assert (await one_run(app, ids[1])).queued_reason == "concurrency"
        gate.open()
        for event_id in ids:
            await app.wait_for_run((await one_run(app, event_id)).id, timeout=LIMIT)
        if park == "wait":
            await app.send(tarry.Event("job/go"))
        else:
            await clock.advance("1h")
        assert (await app.wait_for_run(parked.id, timeout=LIMIT)).output == "parked"


def ranked(app: tarry.Tarry, gate: Gate, order: list[str], **flow: Any) -> None:
    """``data.hold``: stay in the gate first; ``data.park``: wait for ``job/go`` first; then note the start."""
    flow.setdefault("concurrency", tarry.Concurrency(limit=1))

    @app.function(trigger="job/run", priority=tarry.Priority(run="event.data.p"), **flow)
    async def job(ctx: tarry.Context) -> None:
        name = ctx.event.data["name"]
        if ctx.event.data.get("hold"):
            await ctx.step.run("hold", gate.hold, name)
        if ctx.event.data.get("park"):
            await ctx.step.wait_for_event("park", event="job/go", timeout="1d")
        await ctx.step.run("start", order.append, name)


def job(name: str, **data: Any) -> tarry.Event:
    return tarry.Event("job/run", {"name": name, **data})


async def test_queued_runs_start_by_priority_and_ties_in_arrival_order(app: tarry.Tarry) -> None:
    gate, order = Gate(), list[str]()
    ranked(app, gate, order)
    async with app:
        await app.send(job("hold", hold=True))
        await gate.reached(1)
        ids = await app.send([job("b", p=0), job("c", p=10), job("d", p=10), job("e", p=-5),
                              job("f", p="high"), job("g", p=True), job("h")])  # fmt: skip
        runs = await all_queued(app, ids, "concurrency")
        gate.open()
        for r in runs:
            await app.wait_for_run(r.id, timeout=LIMIT)
    # a text, a bool or a missing field is priority 0
    assert order == ["hold", "c", "d", "b", "f", "g", "h", "e"]


async def test_queued_runs_start_by_creation_time_minus_priority(app: tarry.Tarry, clock: VirtualClock) -> None:
    gate, order = Gate(), list[str]()
    ranked(app, gate, order)
    async with app:
        early = await start_run(app, job("early", park=True, p=0))  # rank t0
        await clock.advance("20s")
        ahead = await start_run(app, job("ahead", park=True, p=30))  # rank t0 - 10 s
        behind = await start_run(app, job("behind", park=True, p=10))  # rank t0 + 10 s
        assert {early.status, ahead.status, behind.status} == {"waiting"}
        await app.send(job("hold", hold=True))
        await gate.reached(1)
        await app.send(tarry.Event("job/go"))  # all three go on at once, behind the run in the gate
        for r in (early, ahead, behind):
            await _queued(app, r.id)
        gate.open()
        for r in (early, ahead, behind):
            await app.wait_for_run(r.id, timeout=LIMIT)
    assert order == ["hold", "ahead", "early", "behind"]


@pytest.mark.parametrize(
    ("first", "gap", "second", "expected"),
    [
        (0, "700s", 1000, ["first", "second"]),  # clamped to 600: 100 s behind the first
        (-1000, "700s", 0, ["first", "second"]),  # clamped to -600: 100 s ahead of the second
        (0, "1s", 1.9, ["first", "second"]),  # truncated to 1: a tie, arrival order
        (-1.9, "1s", 0, ["first", "second"]),  # truncated toward zero to -1: a tie
        (0, "1s", 2, ["second", "first"]),  # 2 s is ahead of 1 s of creation time
    ],
)
async def test_priority_is_whole_seconds_clamped_to_600(
    app: tarry.Tarry, clock: VirtualClock, first: float, gap: str, second: float, expected: list[str]
) -> None:
    gate, order = Gate(), list[str]()
    ranked(app, gate, order)
    async with app:
        a = await start_run(app, job("first", park=True, p=first))
        await clock.advance(gap)
        b = await start_run(app, job("second", park=True, p=second))
        await app.send(job("hold", hold=True))
        await gate.reached(1)
        await app.send(tarry.Event("job/go"))
        for r in (a, b):
            await _queued(app, r.id)
        gate.open()
        for r in (a, b):
            await app.wait_for_run(r.id, timeout=LIMIT)
    assert order == ["hold", *expected]


async def test_a_run_that_goes_on_after_a_wait_keeps_its_place(app: tarry.Tarry) -> None:
    gate, order = Gate(), list[str]()
    ranked(app, gate, order)
    async with app:
        parked = await start_run(app, job("parked", park=True))
        assert parked.status == "waiting"
        await app.send(job("hold", hold=True))
        await gate.reached(1)
        [later] = await app.send(job("later"))
        await all_queued(app, [later])
        await app.send(tarry.Event("job/go"))
        await _queued(app, parked.id)  # going on after a wait needs a slot again
        gate.open()
        await app.wait_for_run(parked.id, timeout=LIMIT)
        await app.wait_for_run((await one_run(app, later)).id, timeout=LIMIT)
    assert order == ["hold", "parked", "later"], "the resumed run was created first"


async def test_priority_orders_runs_queued_behind_the_workers_own_capacity(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    app = make_app(concurrency=1)
    gate, order = Gate(), list[str]()
    ranked(app, gate, order, concurrency=None)
    async with app:
        await app.send(job("hold", hold=True))
        await gate.reached(1)
        ids = await app.send([job("low", p=-60), job("plain"), job("high", p=60)])
        await gate.stays(1)
        runs = [await one_run(app, i) for i in ids]
        assert [r.status for r in runs] == ["queued"] * 3
        gate.open()
        for r in runs:
            await app.wait_for_run(r.id, timeout=LIMIT)
    assert order == ["hold", "high", "plain", "low"]


async def test_the_limit_holds_across_two_workers_on_one_store(make_app: Callable[..., tarry.Tarry]) -> None:
    gate = Gate()
    one, two = make_app(), make_app()
    for app in (one, two):
        gated(app, gate, concurrency=tarry.Concurrency(limit=1))
    async with one, two:
        ids = await one.send(named("job/run", "a", "b", "c", "d"))
        await gate.reached(1)
        await gate.stays(1, seconds=1.5)  # a worker picks up another's work within a second (a poll)
        gate.open()
        for event_id in ids:
            assert (await two.wait_for_run((await one_run(two, event_id)).id, timeout=LIMIT)).status == "completed"
    assert gate.most == 1 and sorted(gate.entered) == ["a", "b", "c", "d"]


async def _queued(app: tarry.Tarry, run_id: str) -> tarry.Run:
    """Wait until the run is queued again (its wait ended), held behind a concurrency slot, and return it."""
    for _ in range(LIMIT * 100):
        run = await app.get_run(run_id)
        assert run is not None
        if run.status == "queued" and run.queued_reason == "concurrency":
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never queued for concurrency: {run}")
