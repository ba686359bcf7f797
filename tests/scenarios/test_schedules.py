"""Schedules (API §10): each tick of a ``tarry.Cron`` is one ``tarry/scheduled.timer`` event, routed to its
function alone and admitted as any event; a schedule is stored when a worker that has the function starts;
missed ticks, a changed expression, a removed function. Both stores, on a VirtualClock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT

MONDAY = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)  # a Monday, half past ten (UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=MONDAY)


def scheduled(app: tarry.Tarry, trigger: Any, function_id: str = "tick", **options: Any) -> list[dict[str, Any]]:
    """Register a function on ``trigger``; the list it returns gets, at each run, what the run saw."""
    seen: list[dict[str, Any]] = []

    @app.function(trigger=trigger, id=function_id, **options)
    async def tick(ctx: tarry.Context) -> Any:
        seen.append({"now": app.clock.now_ms(), "event": ctx.event, "events": ctx.events, "run_id": ctx.run_id})
        if ctx.event.data.get("nap"):
            await ctx.step.sleep("nap", ctx.event.data["nap"])
        return ctx.event.data.get("scheduled_at")

    return seen


async def ticks_of(app: tarry.Tarry, function_id: str = "tick") -> list[datetime]:
    """The ``scheduled_at`` of every run of the function, oldest first (each run finished)."""
    runs = await app.list_runs(function_id=function_id, limit=10_000)
    done = [await app.wait_for_run(run.id, timeout=LIMIT) for run in runs]
    assert all(run.status == "completed" for run in done), [(r.status, r.error) for r in done]
    return sorted(datetime.fromisoformat(run.output) for run in done)


# -- a tick is one event -----------------------------------------------------------------------


async def test_hourly_fires_168_ticks_in_a_week_the_clock_reading_each_tick(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    seen = scheduled(app, tarry.Cron("@hourly"))
    async with app:
        await clock.advance("1w")
        hours = [utc(2026, 1, 5, 11) + timedelta(hours=h) for h in range(168)]
        assert await ticks_of(app) == hours
        assert [s["now"] for s in seen] == [round(h.timestamp() * 1000) for h in hours]  # the clock read each tick
        first = seen[0]["event"]
        assert first.name == "tarry/scheduled.timer"
        assert first.data == {"cron": "@hourly", "timezone": "UTC", "scheduled_at": "2026-01-05T11:00:00Z"}
        assert first.ts == round(utc(2026, 1, 5, 11).timestamp() * 1000)  # ts is the tick
        assert seen[0]["events"] == [first]
        [run] = await app.runs_for_event(first.id)
        assert run.id == seen[0]["run_id"] and run.created_at == utc(2026, 1, 5, 11)
        assert run.event == first


async def test_a_weekday_cron_in_a_zone_walks_a_week_in_milliseconds(app: tarry.Tarry, clock: VirtualClock) -> None:
    scheduled(app, tarry.Cron("0 9 * * MON-FRI", timezone="Europe/Berlin"))
    async with app:
        began = time.monotonic()
        await clock.advance("1w")
        took = time.monotonic() - began
        # 09:00 in Berlin is 08:00 UTC in January; from Monday 10:30 UTC: Tuesday to Friday, then Monday
        assert await ticks_of(app) == [utc(2026, 1, d, 8) for d in (6, 7, 8, 9, 12)]
    assert took < 2, f"a week of a weekday schedule took {took:.2f} s"


# Europe/Berlin moves from 02:00 to 03:00 on 2026-03-29, and from 03:00 back to 02:00 on 2026-10-25


def berlin_nightly_and_hourly(app: tarry.Tarry) -> None:
    scheduled(app, tarry.Cron("30 2 * * *", timezone="Europe/Berlin"), "nightly")
    scheduled(app, tarry.Cron("0 * * * *", timezone="Europe/Berlin"), "hourly")


async def test_a_local_time_skipped_in_spring_fires_after_the_gap(make_app: Callable[..., tarry.Tarry]) -> None:
    clock = VirtualClock(start=utc(2026, 3, 27, 12))
    app = make_app(clock=clock)
    berlin_nightly_and_hourly(app)
    async with app:
        await clock.advance("4d")
        assert await ticks_of(app, "nightly") == [
            utc(2026, 3, 28, 1, 30),  # 02:30 CET
            utc(2026, 3, 29, 1, 0),  # 02:30 is skipped: at 03:00 CEST, the first instant after the gap
            utc(2026, 3, 30, 0, 30),  # 02:30 CEST
            utc(2026, 3, 31, 0, 30),
        ]
        # every real hour: 23 on the 29th (local), none twice, none missed
        assert await ticks_of(app, "hourly") == [utc(2026, 3, 27, 13) + timedelta(hours=h) for h in range(96)]


async def test_a_local_time_repeated_in_autumn_fires_once(make_app: Callable[..., tarry.Tarry]) -> None:
    clock = VirtualClock(start=utc(2026, 10, 23, 12))
    app = make_app(clock=clock)
    berlin_nightly_and_hourly(app)
    async with app:
        await clock.advance("4d")
        assert await ticks_of(app, "nightly") == [
            utc(2026, 10, 24, 0, 30),  # 02:30 CEST
            utc(2026, 10, 25, 0, 30),  # 02:30 is shown twice: it fires once, at the first (CEST)
            utc(2026, 10, 26, 1, 30),  # 02:30 CET
            utc(2026, 10, 27, 1, 30),
        ]
        # every real hour: 25 on the 25th (local), 02:00 CEST and 02:00 CET among them
        assert await ticks_of(app, "hourly") == [utc(2026, 10, 23, 13) + timedelta(hours=h) for h in range(96)]


async def test_two_crons_are_two_schedules_and_event_names_still_trigger(app: tarry.Tarry, clock: VirtualClock) -> None:
    seen = scheduled(app, [tarry.Cron("0 12 * * *"), "report/requested", tarry.Cron("0 18 * * *")])
    async with app:
        await app.send(tarry.Event("report/requested", {"scheduled_at": "2026-01-05T10:30:00Z"}))
        await clock.advance("1d")
        assert await ticks_of(app) == [utc(2026, 1, 5, 10, 30), utc(2026, 1, 5, 12), utc(2026, 1, 5, 18)]
        assert [s["event"].data.get("cron") for s in seen] == [None, "0 12 * * *", "0 18 * * *"]


async def test_a_tick_starts_only_its_own_function(app: tarry.Tarry, clock: VirtualClock) -> None:
    scheduled(app, tarry.Cron("@hourly"))
    others = scheduled(app, ["tarry/scheduled.timer", "tarry/*"], "listener")
    async with app:
        await clock.advance("3h")
        assert len(await ticks_of(app)) == 3
        assert [s["event"].name for s in others] == ["tarry/function.finished"] * 3  # (the runs' system events)


async def test_the_same_cron_twice_is_one_schedule(app: tarry.Tarry, clock: VirtualClock) -> None:
    scheduled(app, [tarry.Cron("@hourly"), tarry.Cron("@hourly")])
    async with app:
        await clock.advance("2h")
        assert await ticks_of(app) == [utc(2026, 1, 5, 11), utc(2026, 1, 5, 12)]


# -- flow control applies to ticks ---------------------------------------------------------------


async def test_a_tick_is_admitted_as_any_event(app: tarry.Tarry, clock: VirtualClock) -> None:
    # unlike step.invoke's event, a tick goes through admission: here a rate limit skips two ticks in three
    scheduled(app, tarry.Cron("@hourly"), rate_limit=tarry.RateLimit(limit=1, period="3h"))
    async with app:
        await clock.advance("6h")
        assert await ticks_of(app) == [utc(2026, 1, 5, 11), utc(2026, 1, 5, 14)]
        events = await app.engine.store.list_events("tarry/scheduled.timer", 100)
        assert len(events) == 6  # every tick is stored; the skipped ones started no run


async def test_a_singleton_skips_a_tick_while_the_last_run_is_unfinished(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger=tarry.Cron("*/10 * * * *"), singleton=tarry.Singleton(mode="skip"))
    async def slow(ctx: tarry.Context) -> str:
        await ctx.step.sleep("work", "25m")
        return ctx.event.data["scheduled_at"]

    async with app:
        await clock.advance("1h")
        runs = await app.list_runs(function_id="slow")
        assert sorted(r.event.data["scheduled_at"][11:16] for r in runs) == ["10:40", "11:10"]


async def test_a_concurrency_limit_holds_a_tick_run_queued(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger=tarry.Cron("*/10 * * * *"), concurrency=tarry.Concurrency(limit=1))
    async def one_at_a_time(ctx: tarry.Context) -> None:
        await ctx.step.run("work", lambda: None)

    async with app:
        await clock.advance("30m")
        runs = await app.list_runs(function_id="one-at-a-time")
        assert len(runs) == 3 and all(r.status == "completed" for r in runs)


# -- a schedule is stored when a worker that has the function starts ---------------------------


async def test_ticks_count_from_strictly_after_the_worker_started(make_app: Callable[..., tarry.Tarry]) -> None:
    clock = VirtualClock(start=utc(2026, 1, 5, 11))  # on a tick
    app = make_app(clock=clock)
    scheduled(app, tarry.Cron("@hourly"))
    async with app:
        await clock.advance("1h")
        assert await ticks_of(app) == [utc(2026, 1, 5, 12)]


async def test_a_client_without_a_worker_stores_no_schedule(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    client = make_app()
    scheduled(client, tarry.Cron("@hourly"))
    await client.start(worker=False)
    try:
        await clock.advance("3h")
        assert await client.list_runs() == []
        assert await client._next_due() is None  # no timer: nothing was stored
    finally:
        await client.close()
    worker = make_app()
    scheduled(worker, tarry.Cron("@hourly"))
    async with worker:  # stored now, at 13:30: no tick of the three hours before
        await clock.advance("1h")
        assert await ticks_of(worker) == [utc(2026, 1, 5, 14)]


async def test_the_latest_missed_tick_runs_once_when_a_worker_comes_back(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    first = make_app()
    scheduled(first, tarry.Cron("@hourly"))
    async with first:
        await clock.advance("1h")  # 11:00
    await clock.advance("5h")  # 11:30 to 16:30 with no worker: 12:00 ... 16:00 are missed
    again = make_app()
    scheduled(again, tarry.Cron("@hourly"))
    async with again:
        await again.idle(timeout=LIMIT)
        assert await ticks_of(again) == [utc(2026, 1, 5, 11), utc(2026, 1, 5, 16)]  # only the latest, once
        [catch_up] = [
            r for r in await again.list_runs(function_id="tick") if r.event.data["scheduled_at"][11:13] == "16"
        ]
        assert catch_up.event.ts == round(utc(2026, 1, 5, 16).timestamp() * 1000)
        assert catch_up.created_at == utc(2026, 1, 5, 16, 30)  # made when the worker came back
        await clock.advance("2h")
        assert (await ticks_of(again))[2:] == [utc(2026, 1, 5, 17), utc(2026, 1, 5, 18)]


async def test_a_changed_expression_is_a_new_schedule_without_catch_up(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    first = make_app()
    scheduled(first, tarry.Cron("@hourly"))
    async with first:
        await clock.advance("1h")  # 11:00
    await clock.advance("3h")  # to 14:30: the hourly schedule missed 12:00 ... 14:00
    changed = make_app()
    scheduled(changed, tarry.Cron("*/20 * * * *"))
    async with changed:
        await clock.advance("1h")  # 14:40, 15:00, 15:20
        assert await ticks_of(changed) == [utc(2026, 1, 5, 11), utc(2026, 1, 5, 14, 40), utc(2026, 1, 5, 15),
                                           utc(2026, 1, 5, 15, 20)]  # fmt: skip
        crons = {r.event.data["cron"] for r in await changed.list_runs(function_id="tick")}
        assert crons == {"@hourly", "*/20 * * * *"}  # the hourly one stopped, without its missed tick


async def test_a_changed_zone_is_a_new_schedule(make_app: Callable[..., tarry.Tarry], clock: VirtualClock) -> None:
    first = make_app()
    scheduled(first, tarry.Cron("0 12 * * *"))
    async with first:
        pass
    changed = make_app()
    scheduled(changed, tarry.Cron("0 12 * * *", timezone="Asia/Tokyo"))
    async with changed:
        await clock.advance("1d")
        assert await ticks_of(changed) == [utc(2026, 1, 6, 3)]  # noon in Tokyo; not noon UTC


async def test_two_workers_starting_together_store_one_schedule(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    apps = [make_app() for _ in range(2)]
    for app in apps:
        scheduled(app, tarry.Cron("@hourly"))
    await asyncio.gather(*(app.start() for app in apps))
    try:
        await clock.advance("3h")
        assert await ticks_of(apps[0]) == [utc(2026, 1, 5, h) for h in (11, 12, 13)]  # one run per tick
    finally:
        await asyncio.gather(*(app.close() for app in apps))


async def test_the_schedule_of_a_function_removed_from_the_code_stops(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    first = make_app()
    scheduled(first, tarry.Cron("@hourly"))
    scheduled(first, "report/requested", "report")
    async with first:
        await clock.advance("1h")
    later = make_app()
    scheduled(later, "report/requested", "report")  # the scheduled function is gone from the code
    async with later:
        await clock.advance("3h")
        assert await ticks_of(later) == [utc(2026, 1, 5, 11)]
        assert len(await later.engine.store.list_events("tarry/scheduled.timer", 100)) == 1  # no tick since
        assert await later._next_due() is None  # nor a timer for one


async def test_an_app_with_no_functions_leaves_the_schedules_alone(
    make_app: Callable[..., tarry.Tarry], clock: VirtualClock
) -> None:
    worker = make_app()
    scheduled(worker, tarry.Cron("@hourly"))
    async with worker:
        await clock.advance("1h")  # 11:00
    async with make_app():  # a script with a worker of its own, that defines no function
        pass
    await clock.advance("2h")  # to 13:30
    again = make_app()
    scheduled(again, tarry.Cron("@hourly"))
    async with again:  # the schedule was kept: its latest missed tick runs
        await again.idle(timeout=LIMIT)
        assert await ticks_of(again) == [utc(2026, 1, 5, 11), utc(2026, 1, 5, 13)]


async def test_the_functions_api_shows_each_schedule(app: tarry.Tarry) -> None:
    scheduled(app, ["report/requested", tarry.Cron("0 9 * * MON", timezone="Europe/Berlin"), tarry.Cron("@hourly")])
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            [function] = (await http.get("/api/v1/functions")).json()["functions"]
    assert function["triggers"] == [
        {"event": "report/requested"},
        {"cron": "0 9 * * MON", "timezone": "Europe/Berlin"},
        {"cron": "@hourly", "timezone": "UTC"},
    ]


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ({"debounce": tarry.Debounce(period="1m")}, "invalid debounce: it cannot be combined with a Cron trigger"),
        ({"batch": tarry.Batch(max_size=10, timeout="1m")}, "invalid batch: it cannot be combined with a Cron trigger"),
    ],
)
def test_debounce_or_batch_with_a_cron_trigger_is_refused(app: tarry.Tarry, option: dict[str, Any], says: str) -> None:
    for trigger in (tarry.Cron("@hourly"), ["report/requested", tarry.Cron("@daily")]):
        with pytest.raises(ValueError, match=says):
            scheduled(app, trigger, **option)
    assert app.functions == []
    scheduled(app, "report/requested", **option)  # without a Cron: accepted
    assert app.functions == ["tick"]


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: tarry.Cron("TZ=Europe/Berlin 0 9 * * *"), "a TZ= prefix is not read"),
        (lambda: tarry.Cron("0 0 9 * * MON"), "6 fields"),
        (lambda: tarry.Cron("0 9 * * MONDAY"), "bad day-of-week field"),
        (lambda: tarry.Cron("0 9 * * *", timezone="Europe/Atlantis"), "invalid Cron timezone 'Europe/Atlantis'"),
    ],
)
def test_a_bad_cron_registers_nothing(app: tarry.Tarry, build: Callable[[], tarry.Cron], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        scheduled(app, build())
    assert app.functions == []


def test_a_trigger_list_with_something_else_is_refused(app: tarry.Tarry) -> None:
    with pytest.raises(ValueError, match="invalid trigger 42"):
        scheduled(app, [tarry.Cron("@hourly"), 42])
    assert app.functions == []
