"""Flow control, admission (API §9): whether a delivered event starts a run — rate_limit, idempotency,
singleton, their order, the partitions keys name — and step.invoke, which admission never turns away."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run
from tests.scenarios.gates import Gate, one_run


async def started(app: tarry.Tarry, event: tarry.Event) -> list[tarry.Run]:
    """Send ``event``, wait until idle, and return the runs it started (none when it was skipped)."""
    [event_id] = await app.send(event)
    await app.idle(timeout=LIMIT)
    return await app.runs_for_event(event_id)


def sign_up(**data: Any) -> tarry.Event:
    return tarry.Event("user/signed.up", data)


def welcome(app: tarry.Tarry, function_id: str = "send-welcome", **flow: Any) -> None:
    """``data.nap``: how long the run sleeps before it returns ``data.n``."""

    @app.function(trigger="user/signed.up", id=function_id, **flow)
    async def send_welcome(ctx: tarry.Context) -> Any:
        if ctx.event.data.get("nap"):
            await ctx.step.sleep("nap", ctx.event.data["nap"])
        return ctx.event.data.get("n")


async def outputs(app: tarry.Tarry, function_id: str = "send-welcome") -> list[Any]:
    """The outputs of the function's runs, oldest first."""
    return [r.output for r in reversed(await app.list_runs(function_id=function_id))]


# -- rate_limit -------------------------------------------------------------


async def test_rate_limit_skips_events_beyond_the_limit_in_the_window(app: tarry.Tarry, clock: VirtualClock) -> None:
    welcome(app, rate_limit=tarry.RateLimit(limit=2, period="1m"))
    async with app:
        ids = await app.send([sign_up(n=1), sign_up(n=2), sign_up(n=3)])
        await app.idle(timeout=LIMIT)
        assert [len(await app.runs_for_event(i)) for i in ids] == [1, 1, 0]
        await clock.advance("59s")
        assert await started(app, sign_up(n=4)) == []
        await clock.advance("1s")  # the two admitted at t0 have left the window (t - 1m, t]
        assert len(await started(app, sign_up(n=5))) == 1
        assert len(await started(app, sign_up(n=6))) == 1
        assert await started(app, sign_up(n=7)) == []
        assert await outputs(app) == [1, 2, 5, 6]


async def test_a_skipped_event_is_stored_and_still_resumes_waits(app: tarry.Tarry) -> None:
    welcome(app, rate_limit=tarry.RateLimit(limit=1, period="1h"))

    @app.function(trigger="user/watch")
    async def watcher(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("signed-up", event="user/signed.up", if_exp="async.data.n == 2",
                                            timeout="1h")  # fmt: skip
        return got.data["n"] if got else None

    async with app:
        watching = await start_run(app, tarry.Event("user/watch"))
        assert len(await started(app, sign_up(n=1))) == 1
        assert await started(app, sign_up(n=2)) == []
        assert (await app.wait_for_run(watching.id, timeout=LIMIT)).output == 2
        late = await start_run(app, tarry.Event("user/watch"))  # looks back from its trigger: nothing new
        assert late.status == "waiting"


async def test_rate_limit_with_a_key_counts_per_partition(app: tarry.Tarry) -> None:
    welcome(app, rate_limit=tarry.RateLimit(limit=1, period="1h", key="event.data.user"))
    async with app:
        ids = await app.send([sign_up(user="ada", n=1), sign_up(user="bob", n=2), sign_up(user="ada", n=3)])
        await app.idle(timeout=LIMIT)
        assert [len(await app.runs_for_event(i)) for i in ids] == [1, 1, 0]


async def test_rate_limit_is_decided_when_the_event_is_delivered(app: tarry.Tarry, clock: VirtualClock) -> None:
    welcome(app, rate_limit=tarry.RateLimit(limit=1, period="1m"))
    now = clock.now()
    async with app:
        ids = await app.send([sign_up(n=1), tarry.Event("user/signed.up", {"n": 2}, ts=now + timedelta(seconds=30)),
                              tarry.Event("user/signed.up", {"n": 3}, ts=now + timedelta(seconds=90))])  # fmt: skip
        await app.idle(timeout=LIMIT)
        assert [len(await app.runs_for_event(i)) for i in ids] == [1, 0, 0]
        await clock.advance("30s")  # 2 arrives while 1 is in the window
        await clock.advance("1m")  # 3 arrives once it has left
        assert [len(await app.runs_for_event(i)) for i in ids] == [1, 0, 1]


async def test_rate_limit_survives_a_restart(make_app: Callable[..., tarry.Tarry], clock: VirtualClock) -> None:
    for attempt in range(2):
        app = make_app()
        welcome(app, rate_limit=tarry.RateLimit(limit=1, period="1h"))
        async with app:
            assert len(await started(app, sign_up(n=attempt))) == (1 if attempt == 0 else 0)
    app = make_app()
    welcome(app, rate_limit=tarry.RateLimit(limit=1, period="1h"))
    async with app:
        await clock.advance("1h")
        assert len(await started(app, sign_up(n=9))) == 1


async def test_rate_limit_holds_across_two_workers_on_one_store(make_app: Callable[..., tarry.Tarry]) -> None:
    one, two = make_app(), make_app()
    for app in (one, two):
        welcome(app, rate_limit=tarry.RateLimit(limit=2, period="1h"))
    async with one, two:
        ids = await one.send([sign_up(n=i) for i in range(3)]) + await two.send([sign_up(n=i) for i in range(3, 6)])
        await one.idle(timeout=LIMIT)
        await two.idle(timeout=LIMIT)
        assert sum([len(await two.runs_for_event(i)) for i in ids]) == 2


async def test_events_a_client_sends_are_admitted_by_the_workers_options(make_app: Callable[..., tarry.Tarry]) -> None:
    worker, client = make_app(), make_app()
    welcome(worker, rate_limit=tarry.RateLimit(limit=1, period="1h"))
    async with worker:
        await client.start(worker=False)  # a web app that only sends: it knows no function
        try:
            ids = await client.send([sign_up(n=i) for i in range(3)])
            await worker.idle(timeout=LIMIT)
            assert [len(await worker.runs_for_event(i)) for i in ids] == [1, 0, 0]
        finally:
            await client.close()


# -- idempotency -------------------------------------------------------------


async def test_idempotency_allows_one_run_per_value_for_24_hours(app: tarry.Tarry, clock: VirtualClock) -> None:
    welcome(app, idempotency="event.data.order")
    async with app:
        assert len(await started(app, sign_up(order="o1", n=1))) == 1
        assert len(await started(app, sign_up(order="o2", n=2))) == 1
        assert await started(app, sign_up(order="o1", n=3)) == []
        await clock.advance("23h59m")
        assert await started(app, sign_up(order="o1", n=4)) == [], "24 h from the first run, not the last event"
        await clock.advance("1m1s")
        assert len(await started(app, sign_up(order="o1", n=5))) == 1
        await clock.advance("23h")
        assert await started(app, sign_up(order="o1", n=6)) == []
        assert await outputs(app) == [1, 2, 5]


async def test_idempotency_counts_per_function(app: tarry.Tarry) -> None:
    welcome(app, "first", idempotency="event.data.order")
    welcome(app, "second", idempotency="event.data.order")
    async with app:
        assert {r.function_id for r in await started(app, sign_up(order="o1"))} == {"first", "second"}
        assert await started(app, sign_up(order="o1")) == []


@pytest.mark.parametrize("value", [None, [1], {"a": 1}, "missing"])
async def test_an_idempotency_value_that_is_no_value_always_starts_a_run(app: tarry.Tarry, value: Any) -> None:
    welcome(app, idempotency="event.data.order")
    data = {} if value == "missing" else {"order": value}
    async with app:
        for _ in range(3):
            assert len(await started(app, sign_up(**data))) == 1
        assert len(await started(app, sign_up(order="o1"))) == 1
        assert await started(app, sign_up(order="o1")) == [], "a value is still held to one run"


async def test_idempotency_values_equal_as_keys_are(app: tarry.Tarry) -> None:
    welcome(app, idempotency="event.data.order")
    async with app:
        for value in ("1", 1, True):
            assert len(await started(app, sign_up(order=value))) == 1, value
        assert await started(app, sign_up(order=1.0)) == [], "1 and 1.0 are one value"


async def test_idempotency_survives_a_restart(make_app: Callable[..., tarry.Tarry]) -> None:
    for expected in (1, 0):
        app = make_app()
        welcome(app, idempotency="event.data.order")
        async with app:
            assert len(await started(app, sign_up(order="o1"))) == expected


# -- singleton ---------------------------------------------------------------


@pytest.mark.parametrize("state", ["queued", "running", "sleeping", "waiting"])
async def test_singleton_skip_turns_events_away_while_a_run_is_unfinished(
    app: tarry.Tarry, clock: VirtualClock, state: str
) -> None:
    gate = Gate()

    @app.function(trigger="user/signed.up", singleton=tarry.Singleton(),
                  throttle=tarry.Throttle(limit=1, period="1h"))  # fmt: skip
    async def send_welcome(ctx: tarry.Context) -> Any:
        if state == "running":
            await ctx.step.run("work", gate.hold, "first")
        elif state == "sleeping":
            await ctx.step.sleep("nap", "30m")
        elif state == "waiting":
            await ctx.step.wait_for_event("wait", event="user/done", timeout="30m")
        return ctx.event.data.get("n")

    async with app:
        if state == "queued":
            await started(app, sign_up(n=0))  # finishes at once, but its throttle window holds the next one queued
            [first] = await started(app, sign_up(n=1))
        else:
            [first_id] = await app.send(sign_up(n=1))
            if state == "running":
                await gate.reached(1)
            else:
                await app.idle(timeout=LIMIT)
            first = await one_run(app, first_id)
        assert first.status == state
        [skipped] = await app.send(sign_up(n=2))
        if state == "running":
            await gate.stays(1)
            assert await app.runs_for_event(skipped) == []
            gate.open()
        await clock.advance("1h")
        assert await app.runs_for_event(skipped) == []
        assert (await app.wait_for_run(first.id, timeout=LIMIT)).output == 1
        [after] = await started(app, sign_up(n=3))
        await clock.advance("1h")
        assert (await app.wait_for_run(after.id, timeout=LIMIT)).output == 3


async def test_singleton_with_a_key_keeps_one_unfinished_run_per_partition(app: tarry.Tarry) -> None:
    welcome(app, singleton=tarry.Singleton(key="event.data.user"))
    async with app:
        assert len(await started(app, sign_up(user="ada", nap="1h"))) == 1
        assert len(await started(app, sign_up(user="bob", nap="1h"))) == 1
        assert await started(app, sign_up(user="ada")) == []


async def test_singleton_cancel_replaces_a_sleeping_run(app: tarry.Tarry, clock: VirtualClock) -> None:
    welcome(app, singleton=tarry.Singleton(mode="cancel"))
    async with app:
        [old] = await started(app, sign_up(n=1, nap="1h"))
        assert old.status == "sleeping"
        [new] = await started(app, sign_up(n=2))
        cancelled = await app.wait_for_run(old.id, timeout=LIMIT)
        assert (await app.wait_for_run(new.id, timeout=LIMIT)).output == 2
        await clock.advance("1h")
        still = await app.get_run(old.id)
        assert still is not None and still.status == "cancelled", "a cancelled run never wakes"
    assert cancelled.status == "cancelled"
    assert cancelled.error is not None and cancelled.error["name"] == "Cancelled"
    assert "singleton" in cancelled.error["message"]


async def test_singleton_cancel_starts_the_new_run_once_the_old_one_has_ended(app: tarry.Tarry) -> None:
    gate = Gate()
    notes: list[str] = []

    @app.function(trigger="user/signed.up", singleton=tarry.Singleton(mode="cancel"))
    async def send_welcome(ctx: tarry.Context) -> str:
        name = str(ctx.event.data["name"])
        if name == "old":
            await ctx.step.run("work", gate.hold, name)
            await ctx.step.run("after", notes.append, "old went on")
            return name

        async def first_step() -> None:
            before = await app.get_run(old_run.id)
            notes.append(f"new started after old was {before.status if before else None}")

        await ctx.step.run("first", first_step)
        return name

    async with app:
        [old_id] = await app.send(sign_up(name="old"))
        await gate.reached(1)
        old_run = await one_run(app, old_id)
        [new_id] = await app.send(sign_up(name="new"))
        await gate.stays(1)
        new = await one_run(app, new_id)  # created at once...
        assert new.status == "queued"  # ...but it waits for the old one to end
        gate.open()
        old_done = await app.wait_for_run(old_run.id, timeout=LIMIT)
        new_done = await app.wait_for_run(new.id, timeout=LIMIT)
    assert old_done.status == "cancelled" and old_done.error is not None
    assert "singleton" in old_done.error["message"]
    assert new_done.output == "new"
    assert notes == ["new started after old was cancelled"], "cancelled at its next step boundary, then the new one"


async def test_singleton_survives_a_restart(make_app: Callable[..., tarry.Tarry], clock: VirtualClock) -> None:
    first = make_app()
    welcome(first, singleton=tarry.Singleton())
    async with first:
        [sleeping] = await started(first, sign_up(n=1, nap="1h"))
    second = make_app()
    welcome(second, singleton=tarry.Singleton())
    async with second:
        assert await started(second, sign_up(n=2)) == [], "the sleeping run is still unfinished"
        await clock.advance("1h")
        assert (await second.wait_for_run(sleeping.id, timeout=LIMIT)).output == 1
        assert len(await started(second, sign_up(n=3))) == 1


# -- the order of admission ------------------------------------------------


async def test_an_event_idempotency_turns_away_is_not_counted_by_rate_limit(app: tarry.Tarry) -> None:
    welcome(app, idempotency="event.data.order", rate_limit=tarry.RateLimit(limit=2, period="1h"))
    async with app:
        assert len(await started(app, sign_up(order="a", n=1))) == 1
        assert await started(app, sign_up(order="a", n=2)) == []
        assert len(await started(app, sign_up(order="b", n=3))) == 1, "the duplicate took none of the 2"
        assert await started(app, sign_up(order="c", n=4)) == []


async def test_an_event_rate_limit_turns_away_leaves_its_idempotency_value_unused(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    welcome(app, idempotency="event.data.order", rate_limit=tarry.RateLimit(limit=1, period="1m"))
    async with app:
        assert len(await started(app, sign_up(order="a", n=1))) == 1
        assert await started(app, sign_up(order="b", n=2)) == []
        await clock.advance("1m")
        assert len(await started(app, sign_up(order="b", n=3))) == 1, "b started no run: the first run of b is this"


async def test_an_event_singleton_turns_away_is_not_counted_by_rate_limit(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    welcome(app, singleton=tarry.Singleton(), rate_limit=tarry.RateLimit(limit=2, period="1h"))
    async with app:
        assert len(await started(app, sign_up(n=1, nap="10s"))) == 1
        assert await started(app, sign_up(n=2)) == []
        await clock.advance("10s")
        assert len(await started(app, sign_up(n=3))) == 1
        assert await started(app, sign_up(n=4)) == [], "the rate limit counts the runs 1 and 3"


async def test_an_event_singleton_turns_away_leaves_its_idempotency_value_unused(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    welcome(app, idempotency="event.data.order", singleton=tarry.Singleton())
    async with app:
        assert len(await started(app, sign_up(order="a", nap="10s"))) == 1
        assert await started(app, sign_up(order="b")) == []
        await clock.advance("10s")
        assert len(await started(app, sign_up(order="b"))) == 1


async def test_an_event_singleton_turns_away_joins_no_debounce_burst(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="doc/edited", singleton=tarry.Singleton(), debounce=tarry.Debounce(period="1m"))
    async def reindex(ctx: tarry.Context) -> list[int]:
        await ctx.step.sleep("slow", "1h")
        return [e.data["rev"] for e in ctx.events]

    async with app:
        [first] = await app.send(tarry.Event("doc/edited", {"rev": 1}))
        await clock.advance("1m")
        [run] = await app.runs_for_event(first)
        assert run.status == "sleeping"
        [turned_away] = await app.send(tarry.Event("doc/edited", {"rev": 2}))
        await clock.advance("1m")
        assert await app.runs_for_event(turned_away) == []
        await clock.advance("1h")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == [1]
        [later] = await app.send(tarry.Event("doc/edited", {"rev": 3}))
        await clock.advance("1m")
        [next_run] = await app.runs_for_event(later)
        await clock.advance("1h")
        assert (await app.wait_for_run(next_run.id, timeout=LIMIT)).output == [3], "2 was skipped, not held"
        assert len(await app.list_runs(function_id="reindex")) == 2


# -- keys ------------------------------------------------------------------


async def test_equal_key_values_are_one_partition(app: tarry.Tarry) -> None:
    welcome(app, rate_limit=tarry.RateLimit(limit=1, period="1h", key="event.data.k"))
    async with app:
        for value in ("1", 1, True, "true"):
            assert len(await started(app, sign_up(k=value))) == 1, f"{value!r} is a partition of its own"
        assert await started(app, sign_up(k=1.0)) == [], "1 and 1.0 are one partition"
        assert await started(app, sign_up(k="1")) == []


async def test_a_key_that_is_no_value_puts_the_event_in_one_partition_and_delivers_it(app: tarry.Tarry) -> None:
    welcome(app, rate_limit=tarry.RateLimit(limit=1, period="1h", key="event.data.k.id"))

    @app.function(trigger="user/signed.up")
    async def audit(ctx: tarry.Context) -> Any:
        return ctx.event.data.get("n")

    @app.function(trigger="user/watch")
    async def watcher(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("any", event="user/signed.up", if_exp="async.data.n == 3", timeout="1h")
        return got.data["n"] if got else None

    async with app:
        watching = await start_run(app, tarry.Event("user/watch"))
        values: list[Any] = [{"id": None}, {"id": [1]}, {"id": {"a": 1}}, {}, "text", {"id": "x"}]
        # null, a list, a map, a missing field, a field of a string (fails): all the partition ""
        ids = await app.send([sign_up(n=n, k=k) for n, k in enumerate(values)])
        await app.idle(timeout=LIMIT)
        admitted = [sorted(r.function_id for r in await app.runs_for_event(i)) for i in ids]
        assert admitted == [["audit", "send-welcome"]] + [["audit"]] * 4 + [["audit", "send-welcome"]]
        assert (await app.wait_for_run(watching.id, timeout=LIMIT)).output == 3
        assert sorted(await outputs(app, "audit")) == [0, 1, 2, 3, 4, 5]


# -- step.invoke ------------------------------------------------------------


def invoker(app: tarry.Tarry) -> None:
    @app.function(trigger="parent/start")
    async def parent(ctx: tarry.Context) -> Any:
        try:
            return await ctx.step.invoke("child", "child", data=ctx.event.data)
        except tarry.StepError as err:
            return f"{err.name}: {err.message}"


def child(app: tarry.Tarry, gate: Gate | None = None, **flow: Any) -> None:
    @app.function(trigger="child/direct", id="child", **flow)
    async def the_child(ctx: tarry.Context) -> Any:
        if gate is not None:
            await ctx.step.run("work", gate.hold, ctx.event.data["name"])
        if ctx.event.data.get("nap"):
            await ctx.step.sleep("nap", ctx.event.data["nap"])
        return [ctx.event.data.get("name"), len(ctx.events)]


async def test_invoke_ignores_idempotency_rate_limit_and_singleton(app: tarry.Tarry, clock: VirtualClock) -> None:
    invoker(app)
    child(app, idempotency='"always"', rate_limit=tarry.RateLimit(limit=1, period="1h"), singleton=tarry.Singleton())
    async with app:
        [direct] = await started(app, tarry.Event("child/direct", {"name": "direct", "nap": "1m"}))
        parents = [await start_run(app, tarry.Event("parent/start", {"name": f"p{i}", "nap": "1m"})) for i in range(2)]
        assert len(await app.list_runs(function_id="child")) == 3, "each invoke starts a run of its own"
        assert await started(app, tarry.Event("child/direct", {"name": "again"})) == [], "the options still hold"
        await clock.advance("1m")
        assert [(await app.wait_for_run(p.id, timeout=LIMIT)).output for p in parents] == [["p0", 1], ["p1", 1]]
        assert (await app.wait_for_run(direct.id, timeout=LIMIT)).status == "completed"


@pytest.mark.parametrize(
    "flow",
    [{"debounce": tarry.Debounce(period="1h")}, {"batch": tarry.Batch(max_size=10, timeout="1h")}],
    ids=["debounce", "batch"],
)
async def test_invoke_ignores_debounce_and_batch(app: tarry.Tarry, flow: dict[str, Any]) -> None:
    invoker(app)
    child(app, **flow)
    async with app:
        parent = await start_run(app, tarry.Event("parent/start", {"name": "p"}))
        done = await app.wait_for_run(parent.id, timeout=LIMIT)  # no clock moved: no deadline held it
    assert done.output == ["p", 1]


async def test_invoke_obeys_concurrency(app: tarry.Tarry) -> None:
    gate = Gate()
    invoker(app)
    child(app, gate, concurrency=tarry.Concurrency(limit=1))
    async with app:
        ids = await app.send([tarry.Event("parent/start", {"name": f"p{i}"}) for i in range(2)])
        await gate.reached(1)
        await gate.stays(1)
        queued = [r for r in await app.list_runs(function_id="child") if r.status == "queued"]
        assert len(queued) == 1 and queued[0].queued_reason == "concurrency"
        gate.open()
        done = [await app.wait_for_run((await one_run(app, i)).id, timeout=LIMIT) for i in ids]
    assert [r.output for r in done] == [["p0", 1], ["p1", 1]]


async def test_invoke_obeys_throttle_and_priority(app: tarry.Tarry, clock: VirtualClock) -> None:
    invoker(app)
    child(app, throttle=tarry.Throttle(limit=1, period="1m"), priority=tarry.Priority(run="event.data.p"))
    async with app:
        first = await start_run(app, tarry.Event("parent/start", {"name": "first"}))
        assert first.status == "completed"
        later = [
            await start_run(app, tarry.Event("parent/start", {"name": n, "p": p})) for n, p in [("b", 0), ("c", 60)]
        ]
        assert [r.status for r in later] == ["waiting", "waiting"]
        held = [r for r in await app.list_runs(function_id="child") if r.status == "queued"]
        assert len(held) == 2 and {r.queued_reason for r in held} == {"throttle"}
        await clock.advance("1m")
        b, c = [await app.get_run(r.id) for r in later]
        assert b is not None and c is not None and (b.status, c.status) == ("waiting", "completed")
        await clock.advance("1m")
        assert (await app.wait_for_run(later[0].id, timeout=LIMIT)).output == ["b", 1]


async def test_invoke_obeys_timeouts(app: tarry.Tarry, clock: VirtualClock) -> None:
    invoker(app)
    child(app, timeouts=tarry.Timeouts(finish="1m"))
    async with app:
        parent = await start_run(app, tarry.Event("parent/start", {"name": "p", "nap": "1h"}))
        assert parent.status == "waiting"
        await clock.advance("1m")
        [cancelled] = await app.list_runs(function_id="child")
        done = await app.wait_for_run(parent.id, timeout=LIMIT)
    assert cancelled.status == "cancelled" and cancelled.error is not None
    assert "timeouts.finish" in cancelled.error["message"]
    assert done.output != ["p", 1], "the parent's invoke got no output from a cancelled child"


# -- what a skip shows --------------------------------------------------------


@pytest.fixture
async def served(app: tarry.Tarry) -> AsyncIterator[tuple[tarry.Tarry, httpx.AsyncClient]]:
    welcome(app, "limited", rate_limit=tarry.RateLimit(limit=1, period="1h"), idempotency="event.data.order")
    welcome(app, "single", singleton=tarry.Singleton(key="event.data.user"))
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def test_the_events_api_and_metrics_show_why_an_event_was_skipped(
    served: tuple[tarry.Tarry, httpx.AsyncClient],
) -> None:
    app, client = served
    ids = await app.send([sign_up(order="a", user="u", nap="1h"), sign_up(order="a", user="u"),
                          sign_up(order="b", user="v", nap="1h")])  # fmt: skip
    await app.idle(timeout=LIMIT)
    events = {e["id"]: e for e in (await client.get("/api/v1/events")).json()["events"]}

    def skipped(event_id: str) -> list[tuple[str, str]]:
        return sorted((s["function_id"], s["reason"]) for s in events[event_id]["skipped"])

    assert skipped(ids[0]) == []
    # idempotency is decided before rate_limit, which would have turned it away too
    assert skipped(ids[1]) == [("limited", "idempotency"), ("single", "singleton")]
    assert skipped(ids[2]) == [("limited", "rate_limit")]
    runs = (await client.get(f"/api/v1/events/{ids[1]}/runs")).json()
    assert runs["runs"] == [] and sorted((s["function_id"], s["reason"]) for s in runs["skipped"]) == skipped(ids[1])
    metrics = (await client.get("/metrics")).text
    assert _sample(metrics, function_id="limited", reason="idempotency") == 1
    assert _sample(metrics, function_id="limited", reason="rate_limit") == 1
    assert _sample(metrics, function_id="single", reason="singleton") == 1


def _sample(text: str, **labels: str) -> float:
    for line in text.splitlines():
        found = re.fullmatch(r"tarry_runs_skipped_total\{(?P<labels>[^}]*)\} (?P<value>\S+)", line)
        if found and dict(re.findall(r'(\w+)="([^"]*)"', found["labels"])) == labels:
            return float(found["value"])
    raise AssertionError(f"no tarry_runs_skipped_total sample {labels} in /metrics")
