"""Flow control, throttle (API §9): at most ``limit`` first starts of a partition in any ``period``, the
others held queued (nothing dropped); with priority, concurrency and timeouts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run
from tests.scenarios.gates import Gate, one_run


def throttled(app: tarry.Tarry, order: list[str] | None = None, **flow: Any) -> None:
    """``data.nap``: how long to sleep after the first step; the first step notes the run's name in ``order``."""
    notes = order if order is not None else []

    @app.function(trigger="crm/contact.updated", **flow)
    async def sync_contact(ctx: tarry.Context) -> str:
        name = str(ctx.event.data["name"])
        await ctx.step.run("start", lambda: notes.append(name))
        if ctx.event.data.get("nap"):
            await ctx.step.sleep("nap", ctx.event.data["nap"])
            await ctx.step.run("after-nap", lambda: None)
        return name


def contact(name: str, **data: Any) -> tarry.Event:
    return tarry.Event("crm/contact.updated", {"name": name, **data})


async def runs_of(app: tarry.Tarry, event_ids: list[str]) -> list[tarry.Run]:
    """The run each event started, read with its steps."""
    return [await read(app, (await one_run(app, i)).id) for i in event_ids]


async def read(app: tarry.Tarry, run_id: str) -> tarry.Run:
    run = await app.get_run(run_id)
    assert run is not None
    return run


def first_start(run: tarry.Run) -> datetime | None:
    return run.steps[0].started_at if run.steps else None


async def test_throttle_delays_starts_to_the_window_and_drops_nothing(app: tarry.Tarry, clock: VirtualClock) -> None:
    throttled(app, throttle=tarry.Throttle(limit=2, period="1m"))
    t0 = clock.now()
    async with app:
        ids = await app.send([contact(f"c{i}") for i in range(5)])
        await app.idle(timeout=LIMIT)  # returns although three runs wait for the window
        runs = await runs_of(app, ids)
        assert [r.status for r in runs] == ["completed", "completed", "queued", "queued", "queued"]
        assert [r.queued_reason for r in runs] == [None, None, "throttle", "throttle", "throttle"]
        await clock.advance("59s")
        assert [r.status for r in await runs_of(app, ids)][2:] == ["queued"] * 3
        await clock.advance("1s")  # t0 has left the window (t - 1m, t]
        assert [r.status for r in await runs_of(app, ids)] == ["completed"] * 4 + ["queued"]
        await clock.advance("1m")
        done = await runs_of(app, ids)
    assert [r.output for r in done] == ["c0", "c1", "c2", "c3", "c4"]
    assert [first_start(r) for r in done] == [t0, t0] + [t0 + timedelta(minutes=1)] * 2 + [t0 + timedelta(minutes=2)]
    assert all(r.queued_reason is None for r in done)


async def test_a_key_throttles_each_partition_on_its_own(app: tarry.Tarry, clock: VirtualClock) -> None:
    throttled(app, throttle=tarry.Throttle(limit=1, period="1m", key="event.data.customer"))
    async with app:
        ids = await app.send(
            [contact("a1", customer="ada"), contact("a2", customer="ada"), contact("b1", customer="bob")]
        )
        await app.idle(timeout=LIMIT)
        runs = await runs_of(app, ids)
        assert [r.status for r in runs] == ["completed", "queued", "completed"]
        assert runs[1].queued_reason == "throttle"
        await clock.advance("1m")
        assert (await one_run(app, ids[1])).status == "completed"


@pytest.mark.parametrize("pause", ["sleep", "backoff"])
async def test_a_run_counts_once_at_its_first_start(app: tarry.Tarry, clock: VirtualClock, pause: str) -> None:
    failures: list[str] = []

    def flaky(name: str) -> str:
        if name not in failures:
            failures.append(name)
            raise tarry.RetryAfterError("busy", "10s")
        return name

    @app.function(trigger="crm/contact.updated", throttle=tarry.Throttle(limit=1, period="1m"))
    async def sync_contact(ctx: tarry.Context) -> str:
        name = str(ctx.event.data["name"])
        await ctx.step.run("first", lambda: name)
        if pause == "sleep":
            await ctx.step.sleep("nap", "10s")
        else:
            await ctx.step.run("flaky", flaky, name)
        await ctx.step.run("last", lambda: name)
        return name

    async with app:
        ids = await app.send([contact("a"), contact("b")])
        await app.idle(timeout=LIMIT)
        a, b = await runs_of(app, ids)
        assert a.status == "sleeping" and b.status == "queued" and b.queued_reason == "throttle"
        await clock.advance("10s")  # a goes on: its later steps are not throttled
        a, b = await runs_of(app, ids)
        assert a.status == "completed" and b.status == "queued"
        await clock.advance("50s")
        assert (await one_run(app, ids[1])).status == "sleeping"
        await clock.advance("10s")
        assert (await one_run(app, ids[1])).status == "completed"


async def test_a_run_held_by_concurrency_takes_no_throttle_slot(app: tarry.Tarry, clock: VirtualClock) -> None:
    gate = Gate()

    @app.function(
        trigger="crm/contact.updated",
        concurrency=tarry.Concurrency(limit=1, key="event.data.customer"),
        throttle=tarry.Throttle(limit=2, period="1m"),
    )
    async def sync_contact(ctx: tarry.Context) -> str:
        return str(await ctx.step.run("work", gate.hold, ctx.event.data["name"]))

    async with app:
        [a] = await app.send(contact("a", customer="x"))
        await gate.reached(1)
        [b] = await app.send(contact("b", customer="x"))
        [c] = await app.send(contact("c", customer="y"))
        await gate.reached(2)  # b, held by x's concurrency, took none of the two throttle slots
        await gate.stays(2)
        assert sorted(gate.entered) == ["a", "c"]
        assert (await one_run(app, b)).queued_reason == "concurrency"
        gate.open()
        await app.wait_for_run((await one_run(app, a)).id, timeout=LIMIT)
        await app.wait_for_run((await one_run(app, c)).id, timeout=LIMIT)
        await app.idle(timeout=LIMIT)
        held = await one_run(app, b)
        assert held.status == "queued" and held.queued_reason == "throttle", "a and c started in this window"
        await clock.advance("1m")
        assert (await one_run(app, b)).status == "completed"


async def test_throttled_runs_start_by_creation_time_minus_priority(app: tarry.Tarry, clock: VirtualClock) -> None:
    order: list[str] = []
    throttled(app, order, throttle=tarry.Throttle(limit=1, period="1m"), priority=tarry.Priority(run="event.data.p"))
    async with app:
        ids = await app.send([contact("first"), contact("b", p=0), contact("e", p=-30)])
        await clock.advance("30s")
        ids += await app.send([contact("c", p=60), contact("d", p=0), contact("d2", p=0)])
        for _ in range(5):
            await clock.advance("1m")
        assert all(r.status == "completed" for r in await runs_of(app, ids))
    # ranks: b t0, e t0+30s, c t0-30s, d and d2 t0+30s (arrival order after e)
    assert order == ["first", "c", "b", "e", "d", "d2"]


async def test_timeouts_start_cancels_a_run_the_throttle_held_too_long(app: tarry.Tarry, clock: VirtualClock) -> None:
    throttled(app, throttle=tarry.Throttle(limit=1, period="1m"), timeouts=tarry.Timeouts(start="90s"))
    t0 = clock.now()
    async with app:
        ids = await app.send([contact("a", nap="5m"), contact("b"), contact("c")])
        await clock.advance("1m")
        a, b, c = await runs_of(app, ids)
        assert b.status == "completed", "b started 60 s after its creation, within 90 s"
        assert c.status == "queued"
        await clock.advance("30s")
        [c] = await runs_of(app, ids[2:])
        assert c.status == "cancelled" and c.ended_at == t0 + timedelta(seconds=90)
        assert c.error is not None and c.error["name"] == "Cancelled" and "timeouts.start" in c.error["message"]
        assert c.steps == []
        await clock.advance("5m")
        a, b, c = await runs_of(app, ids)
    assert a.status == "completed", "a started in time: timeouts.start never cancels it"
    assert c.status == "cancelled"


async def test_timeouts_finish_counts_from_the_first_start(app: tarry.Tarry, clock: VirtualClock) -> None:
    throttled(app, throttle=tarry.Throttle(limit=1, period="1m"), timeouts=tarry.Timeouts(finish="2m"))
    t0 = clock.now()
    async with app:
        ids = await app.send([contact("a", nap="90s"), contact("b", nap="90s"), contact("c", nap="3m")])
        await clock.advance("2m")
        # b was created at t0 but started at t0+1m: its deadline is t0+3m, not t0+2m
        assert [r.status for r in await runs_of(app, ids)] == ["completed", "sleeping", "sleeping"]
        await clock.advance("30s")
        assert (await one_run(app, ids[1])).status == "completed"
        await clock.advance("1m30s")
        [c] = await runs_of(app, ids[2:])  # started at t0+2m, still sleeping at its deadline t0+4m
    assert c.status == "cancelled" and c.ended_at == t0 + timedelta(minutes=4)
    assert c.error is not None and c.error["name"] == "Cancelled" and "timeouts.finish" in c.error["message"]
    assert [s.id for s in c.steps if s.status == "completed"] == ["start"]


async def test_timeouts_finish_cancels_a_waiting_run(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="crm/contact.updated", timeouts=tarry.Timeouts(finish="1h"))
    async def approve(ctx: tarry.Context) -> str:
        got = await ctx.step.wait_for_event("approval", event="crm/approved", timeout="1d")
        return "approved" if got else "timed out"

    async with app:
        run = await start_run(app, contact("a"))
        assert run.status == "waiting"
        await clock.advance("59m")
        still = await app.get_run(run.id)
        assert still is not None and still.status == "waiting"
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "cancelled" and done.error is not None and "timeouts.finish" in done.error["message"]


async def test_the_window_survives_a_restart(make_app: Callable[..., tarry.Tarry], clock: VirtualClock) -> None:
    first = make_app()
    throttled(first, throttle=tarry.Throttle(limit=1, period="1h"))
    async with first:
        done = await start_run(first, contact("before"))
    assert done.status == "completed"
    second = make_app()
    throttled(second, throttle=tarry.Throttle(limit=1, period="1h"))
    async with second:
        held = await start_run(second, contact("after"))
        assert held.status == "queued" and held.queued_reason == "throttle"
        await clock.advance("1h")
        assert (await second.wait_for_run(held.id, timeout=LIMIT)).output == "after"


async def test_the_window_holds_across_two_workers_on_one_store(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    one, two = make_app(), make_app()
    for app in (one, two):
        throttled(app, throttle=tarry.Throttle(limit=1, period="1m"))
    async with one, two:
        ids = await one.send([contact(f"c{i}") for i in range(3)])
        await one.idle(timeout=LIMIT)
        await two.idle(timeout=LIMIT)
        assert sorted(r.status for r in await runs_of(two, ids)) == ["completed", "queued", "queued"]
        await clock.advance("1m")
        assert sorted(r.status for r in await runs_of(two, ids)) == ["completed", "completed", "queued"]
        await clock.advance("1m")
        assert [r.status for r in await runs_of(one, ids)] == ["completed"] * 3
