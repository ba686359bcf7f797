"""Flow control, debounce and batch (API §9): events held per partition until a deadline or a size makes
one run of them all, with ``ctx.events``, ``Run.events`` and ``runs_for_event`` for each of them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run
from tests.scenarios.gates import one_run


def gathered(app: tarry.Tarry, **flow: Any) -> None:
    """A function that returns which events it got: ``data.i`` of ``ctx.event`` and of each of ``ctx.events``."""

    @app.function(trigger="doc/edited", **flow)
    async def reindex(ctx: tarry.Context) -> dict[str, Any]:
        return {"event": ctx.event.data.get("i"), "events": [e.data.get("i") for e in ctx.events]}


def edit(i: int, **data: Any) -> tarry.Event:
    return tarry.Event("doc/edited", {"i": i, **data})


async def held(app: tarry.Tarry, event_ids: list[str]) -> None:
    """None of the events has started a run yet (idle returns while a deadline holds them)."""
    await app.idle(timeout=LIMIT)
    for event_id in event_ids:
        assert await app.runs_for_event(event_id) == [], "still held"


async def the_run(app: tarry.Tarry, event_ids: list[str]) -> tarry.Run:
    """The one run that every one of ``event_ids`` started, finished."""
    runs = [await one_run(app, i) for i in event_ids]
    assert len({r.id for r in runs}) == 1, runs
    return await app.wait_for_run(runs[0].id, timeout=LIMIT)


async def test_without_debounce_or_batch_events_is_the_event_alone(app: tarry.Tarry) -> None:
    gathered(app)
    async with app:
        run = await start_run(app, edit(1))
    assert run.output == {"event": 1, "events": [1]}
    assert [e.id for e in run.events] == [run.event.id]


# -- debounce ----------------------------------------------------------------


async def test_debounce_makes_one_run_a_period_after_the_last_event(app: tarry.Tarry, clock: VirtualClock) -> None:
    gathered(app, debounce=tarry.Debounce(period="5m"))
    t0 = clock.now()
    async with app:
        ids: list[str] = []
        for i in range(3):
            ids += await app.send(edit(i))
            await held(app, ids)
            await clock.advance("1m")
        await clock.advance("2m")  # t0+5m: a period after the first event, but each event restarted it
        await held(app, ids)
        await clock.advance("1m59s")
        await held(app, ids)
        await clock.advance("1s")  # t0+7m: a period after the last
        run = await the_run(app, ids)
    assert run.output == {"event": 2, "events": [0, 1, 2]}, "ctx.event is the last, ctx.events in delivery order"
    assert run.event.id == ids[-1] and [e.id for e in run.events] == ids
    assert run.created_at == t0 + timedelta(minutes=7)


async def test_debounce_timeout_ends_a_burst_that_never_pauses(app: tarry.Tarry, clock: VirtualClock) -> None:
    gathered(app, debounce=tarry.Debounce(period="1m", timeout="3m"))
    t0 = clock.now()
    async with app:
        ids: list[str] = []
        for i in range(6):  # every 30 s: the period never runs out
            ids += await app.send(edit(i))
            await clock.advance("30s")
        run = await the_run(app, ids)  # t0+3m: the timeout after the first event
        assert run.created_at == t0 + timedelta(minutes=3)
        assert run.output == {"event": 5, "events": [0, 1, 2, 3, 4, 5]}
        [after] = await app.send(edit(6))  # a new burst
        await clock.advance("59s")
        await held(app, [after])
        await clock.advance("1s")
        assert (await the_run(app, [after])).output == {"event": 6, "events": [6]}


async def test_debounce_keys_keep_one_burst_per_partition(app: tarry.Tarry, clock: VirtualClock) -> None:
    gathered(app, debounce=tarry.Debounce(period="1m", key="event.data.doc"))
    async with app:
        [d1] = await app.send(edit(1, doc="d1"))
        await clock.advance("50s")
        [d2] = await app.send(edit(2, doc="d2"))  # restarts d2's period, not d1's
        await clock.advance("10s")
        assert (await the_run(app, [d1])).output == {"event": 1, "events": [1]}
        await held(app, [d2])
        ids = await app.send([edit(3, doc="d2"), edit(4, doc="d1")])
        await clock.advance("1m")
        assert (await the_run(app, [d2, ids[0]])).output == {"event": 3, "events": [2, 3]}
        assert (await the_run(app, [ids[1]])).output == {"event": 4, "events": [4]}


async def test_debounce_keeps_the_newest_1000_events_of_a_burst(app: tarry.Tarry, clock: VirtualClock) -> None:
    gathered(app, debounce=tarry.Debounce(period="1m"))
    async with app:
        ids = await app.send([edit(i) for i in range(1005)])
        await clock.advance("1m")
        run = await the_run(app, ids[-1:])
    assert run.output["event"] == 1004
    assert run.output["events"] == list(range(5, 1005))
    assert [e.id for e in run.events] == ids[5:]


async def test_a_cancel_on_event_during_a_burst_does_nothing(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="doc/edited", debounce=tarry.Debounce(period="1m", key="event.data.doc"),
                  cancel_on=[tarry.CancelOn(event="doc/deleted", match="data.doc")])  # fmt: skip
    async def reindex(ctx: tarry.Context) -> int:
        await ctx.step.sleep("slow", "1h")
        return len(ctx.events)

    async with app:
        [first] = await app.send(edit(1, doc="d1"))
        await clock.advance("30s")
        await app.send(tarry.Event("doc/deleted", {"doc": "d1"}))  # there is no run yet
        await clock.advance("30s")
        run = await one_run(app, first)
        assert run.status == "sleeping"
        await clock.advance("1h")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == 1
        [second] = await app.send(edit(2, doc="d1"))
        await clock.advance("1m")
        again = await one_run(app, second)
        await app.send(tarry.Event("doc/deleted", {"doc": "d1"}))  # the run exists now: it is cancelled
        assert (await app.wait_for_run(again.id, timeout=LIMIT)).status == "cancelled"


async def test_a_waits_lookback_counts_from_the_bursts_last_event(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="doc/edited", debounce=tarry.Debounce(period="1m"))
    async def publish(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("review", event="doc/reviewed", timeout="1h")
        return got.data["which"] if got else None

    async with app:
        [first] = await app.send(edit(1))
        await clock.advance("10s")
        await app.send(tarry.Event("doc/reviewed", {"which": "between"}))
        await clock.advance("10s")
        [last] = await app.send(edit(2))
        await clock.advance("10s")
        await app.send(tarry.Event("doc/reviewed", {"which": "after the last"}))
        await clock.advance("1m")
        run = await the_run(app, [first, last])
    assert run.output == "after the last"


# -- batch -------------------------------------------------------------------


async def test_batch_makes_a_run_per_max_size_events_and_after_the_timeout(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    gathered(app, batch=tarry.Batch(max_size=3, timeout="1m"))
    t0 = clock.now()
    async with app:
        ids = await app.send([edit(i) for i in range(7)])
        await app.idle(timeout=LIMIT)
        first, second = await the_run(app, ids[0:3]), await the_run(app, ids[3:6])
        assert first.output == {"event": 0, "events": [0, 1, 2]}, "ctx.event is the first, ctx.events in order"
        assert second.output == {"event": 3, "events": [3, 4, 5]}
        assert first.event.id == ids[0] and [e.id for e in first.events] == ids[0:3]
        await held(app, ids[6:])
        await clock.advance("59s")
        await held(app, ids[6:])
        await clock.advance("1s")
        last = await the_run(app, ids[6:])
    assert last.output == {"event": 6, "events": [6]} and last.created_at == t0 + timedelta(minutes=1)


async def test_batch_timeout_counts_from_the_batchs_first_event(app: tarry.Tarry, clock: VirtualClock) -> None:
    gathered(app, batch=tarry.Batch(max_size=10, timeout="1m"))
    t0 = clock.now()
    async with app:
        [a] = await app.send(edit(1))
        await clock.advance("30s")
        [b] = await app.send(edit(2))
        await clock.advance("29s")
        await held(app, [a, b])
        await clock.advance("1s")
        run = await the_run(app, [a, b])
        assert run.output == {"event": 1, "events": [1, 2]} and run.created_at == t0 + timedelta(minutes=1)
        await clock.advance("10s")
        [c] = await app.send(edit(3))  # opens the next batch
        await clock.advance("59s")
        await held(app, [c])
        await clock.advance("1s")
        assert (await the_run(app, [c])).created_at == t0 + timedelta(seconds=130)


async def test_an_event_that_would_take_a_batch_past_10_mib_opens_the_next(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    gathered(app, batch=tarry.Batch(max_size=1000, timeout="1m"))
    blob = "x" * 500_000  # 20 such events are about 10.0 MB of JSON, 21 are past 10 MiB (10,485,760 bytes)
    async with app:
        ids = [event_id for i in range(22) for event_id in await app.send(edit(i, blob=blob))]
        await app.idle(timeout=LIMIT)
        full = await the_run(app, ids[:20])
        assert full.output["events"] == list(range(20))
        await held(app, ids[20:])
        await clock.advance("1m")
        rest = await the_run(app, ids[20:])
    assert rest.output == {"event": 20, "events": [20, 21]}


async def test_batch_keys_gather_each_partition_on_its_own(app: tarry.Tarry, clock: VirtualClock) -> None:
    gathered(app, batch=tarry.Batch(max_size=2, timeout="1m", key="event.data.user"))
    async with app:
        ids = await app.send([edit(0, user="u1"), edit(1, user="u2"), edit(2, user="u1")])
        await app.idle(timeout=LIMIT)
        assert (await the_run(app, [ids[0], ids[2]])).output == {"event": 0, "events": [0, 2]}
        await held(app, [ids[1]])
        await clock.advance("1m")
        assert (await the_run(app, [ids[1]])).output == {"event": 1, "events": [1]}


@pytest.mark.parametrize("wait", [{"match": "data.order"}, {"if_exp": "event.data.order == async.data.order"}])
async def test_a_batchs_waits_match_against_its_first_event(app: tarry.Tarry, wait: dict[str, str]) -> None:
    @app.function(trigger="order/placed", batch=tarry.Batch(max_size=2, timeout="1m"))
    async def ship(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("paid", event="order/paid", timeout="1h", **wait)
        return got.data["order"] if got else None

    async with app:
        ids = await app.send(
            [tarry.Event("order/placed", {"order": "o1"}), tarry.Event("order/placed", {"order": "o2"})]
        )
        await app.idle(timeout=LIMIT)
        run = await one_run(app, ids[1])
        assert run.status == "waiting"
        await app.send(tarry.Event("order/paid", {"order": "o2"}))
        await app.idle(timeout=LIMIT)
        still = await app.get_run(run.id)
        assert still is not None and still.status == "waiting"
        await app.send(tarry.Event("order/paid", {"order": "o1"}))
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == "o1"


async def test_a_batchs_lookback_counts_from_its_last_event(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="doc/edited", batch=tarry.Batch(max_size=2, timeout="1h"))
    async def publish(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("review", event="doc/reviewed", timeout="1h")
        return got.data["which"] if got else None

    async with app:
        [first] = await app.send(edit(1))
        await app.send(tarry.Event("doc/reviewed", {"which": "between"}))
        await clock.advance("10s")
        [last] = await app.send(edit(2))
        await app.idle(timeout=LIMIT)
        run = await one_run(app, last)
        assert run.status == "waiting", "the review sent between the batch's events is before its last"
        await app.send(tarry.Event("doc/reviewed", {"which": "after"}))
        assert (await the_run(app, [first, last])).output == "after"


@pytest.mark.parametrize(
    "flow",
    [{"debounce": tarry.Debounce(period="1m")}, {"batch": tarry.Batch(max_size=3, timeout="1m")}],
    ids=["debounce", "batch"],
)
async def test_held_events_survive_a_restart(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock, flow: dict[str, Any]
) -> None:
    first = make_app()
    gathered(first, **flow)
    async with first:
        ids = await first.send([edit(0), edit(1)])
        await held(first, ids)
    second = make_app()
    gathered(second, **flow)
    async with second:
        await held(second, ids)
        ids += await second.send(edit(2))
        await clock.advance("1m")
        run = await the_run(second, ids)
    assert run.output["events"] == [0, 1, 2]


# -- keys of debounce and batch ------------------------------------------------


@pytest.mark.parametrize(
    "flow",
    [
        {"debounce": tarry.Debounce(period="1m", key="event.data.doc")},
        {"batch": tarry.Batch(max_size=5, timeout="1m", key="event.data.doc")},
    ],
    ids=["debounce", "batch"],
)
async def test_a_key_that_is_no_value_gathers_in_the_partition_of_the_empty_text(
    app: tarry.Tarry, clock: VirtualClock, flow: dict[str, Any]
) -> None:
    gathered(app, **flow)

    @app.function(trigger="doc/edited")
    async def audit(ctx: tarry.Context) -> Any:
        return ctx.event.data["i"]

    async with app:
        ids = await app.send([edit(0, doc=None), edit(1, doc=[1]), edit(2, doc={"a": 1}), edit(3), edit(4, doc="d")])
        await app.idle(timeout=LIMIT)
        for n, event_id in enumerate(ids):  # delivered to every other function at once
            [audited] = [r for r in await app.runs_for_event(event_id) if r.function_id == "audit"]
            assert (await app.wait_for_run(audited.id, timeout=LIMIT)).output == n
        await clock.advance("1m")
        gathered_runs = {r.id: r for i in ids for r in await app.runs_for_event(i) if r.function_id == "reindex"}
        outputs = sorted([(await app.wait_for_run(run_id, timeout=LIMIT)).output["events"] for run_id in gathered_runs])
    assert outputs == [[0, 1, 2, 3], [4]]


@pytest.mark.parametrize(
    "flow",
    [
        {"debounce": tarry.Debounce(period="1m", key="event.data.k")},
        {"batch": tarry.Batch(max_size=5, timeout="1m", key="event.data.k")},
    ],
    ids=["debounce", "batch"],
)
async def test_equal_key_values_gather_together(app: tarry.Tarry, clock: VirtualClock, flow: dict[str, Any]) -> None:
    gathered(app, **flow)
    async with app:
        ids = await app.send([edit(0, k="1"), edit(1, k=1), edit(2, k=True), edit(3, k=1.0)])
        await clock.advance("1m")
        runs = {r.id: r for i in ids for r in await app.runs_for_event(i)}
        outputs = sorted([(await app.wait_for_run(run_id, timeout=LIMIT)).output["events"] for run_id in runs])
    assert outputs == [[0], [1, 3], [2]]
