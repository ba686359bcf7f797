"""Bulk actions (API §10): ``app.cancel_runs`` and ``app.rerun_runs`` — each filter alone and together, the
bounds of the time range, the runs made during the call left alone, paging, the order of the new ids, a
run progressing meanwhile, and each bad filter changing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT
from tests.scenarios.gates import Gate

CANCELLED = {"name": "Cancelled", "message": "cancelled by cancel_runs"}


def waiting(app: tarry.Tarry, function_id: str = "signup", trigger: str = "user/signed-up", **options: Any) -> None:
    """A function whose runs wait for a day (unfinished), unless ``data.done``."""

    @app.function(trigger=trigger, id=function_id, **options)
    async def wait(ctx: tarry.Context) -> Any:
        if not ctx.event.data.get("done"):
            await ctx.step.wait_for_event("confirm", event="user/confirmed", timeout="1d")
        return ctx.event.data.get("n")


async def started(app: tarry.Tarry, *events: tarry.Event) -> list[tarry.Run]:
    """Send the events and return the one run each started, once the app is idle."""
    ids = await app.send(list(events))
    await app.idle(timeout=LIMIT)
    runs = []
    for event_id in ids:
        [run] = await app.runs_for_event(event_id)
        runs.append(run)
    return runs


async def statuses(app: tarry.Tarry, runs: list[tarry.Run]) -> list[str]:
    found = [await app.get_run(r.id) for r in runs]
    return [r.status.value if r is not None else "missing" for r in found]


def signup(n: int, **data: Any) -> tarry.Event:
    return tarry.Event("user/signed-up", {"n": n, **data})


# -- cancel_runs ----------------------------------------------------------------------------


async def test_cancel_runs_by_function_cancels_its_unfinished_runs(app: tarry.Tarry) -> None:
    waiting(app)
    waiting(app, "trial", "user/trial")
    async with app:
        mine = await started(app, signup(1), signup(2))
        finished = await started(app, signup(3, done=True))
        other = await started(app, tarry.Event("user/trial", {}))
        assert await app.cancel_runs(function_id="signup") == 2
        assert await statuses(app, mine + finished + other) == ["cancelled", "cancelled", "completed", "waiting"]
        for run in mine:
            done = await app.get_run(run.id)
            assert done is not None and done.error == CANCELLED
        assert await app.cancel_runs(function_id="signup") == 0, "nothing unfinished is left"


async def test_cancel_runs_by_if_exp_over_the_trigger(app: tarry.Tarry) -> None:
    waiting(app)
    async with app:
        runs = await started(app, signup(1, plan="free"), signup(2, plan="pro"), signup(3))
        assert await app.cancel_runs(if_exp="event.data.plan == 'free'") == 1
        assert await statuses(app, runs) == ["cancelled", "waiting", "waiting"], (
            "one that fails to evaluate is not taken"
        )


async def three_hours(app: tarry.Tarry, clock: VirtualClock) -> tuple[list[tarry.Run], datetime]:
    """Runs created at t0, t0 + 1h and t0 + 2h; and t0."""
    t0 = clock.now()
    runs = []
    for n in range(3):
        runs.extend(await started(app, signup(n)))
        await clock.advance("1h")
    assert [r.created_at for r in runs] == [t0 + timedelta(hours=h) for h in range(3)]
    return runs, t0


async def test_created_after_is_inclusive(app: tarry.Tarry, clock: VirtualClock) -> None:
    waiting(app)
    async with app:
        runs, t0 = await three_hours(app, clock)
        assert await app.cancel_runs(created_after=t0 + timedelta(hours=1)) == 2
        assert await statuses(app, runs) == ["waiting", "cancelled", "cancelled"]


async def test_created_before_is_exclusive(app: tarry.Tarry, clock: VirtualClock) -> None:
    waiting(app)
    async with app:
        runs, t0 = await three_hours(app, clock)
        assert await app.cancel_runs(created_before=t0 + timedelta(hours=1)) == 1
        assert await statuses(app, runs) == ["cancelled", "waiting", "waiting"]


async def test_the_filters_together_take_only_what_matches_them_all(app: tarry.Tarry, clock: VirtualClock) -> None:
    waiting(app)
    waiting(app, "trial", "user/trial")
    async with app:
        t0 = clock.now()
        early = await started(app, signup(1, plan="free"), tarry.Event("user/trial", {"plan": "free"}))
        await clock.advance("1h")
        late = await started(app, signup(2, plan="free"), signup(3, plan="pro"),
                             tarry.Event("user/trial", {"plan": "free"}))  # fmt: skip
        await clock.advance("1h")
        later = await started(app, signup(4, plan="free"))
        count = await app.cancel_runs(function_id="signup", if_exp="event.data.plan == 'free'",
                                      created_after=t0 + timedelta(minutes=30), created_before=clock.now())  # fmt: skip
        assert count == 1
        assert await statuses(app, early + late + later) == [
            "waiting", "waiting", "cancelled", "waiting", "waiting", "waiting"]  # fmt: skip


async def test_a_running_run_asked_to_stop_is_counted(app: tarry.Tarry) -> None:
    gate = Gate()

    @app.function(trigger="job/go")
    async def job(ctx: tarry.Context) -> None:
        await ctx.step.run("work", gate.hold, "in")
        await ctx.step.run("after", lambda: None)

    async with app:
        [event_id] = await app.send(tarry.Event("job/go"))
        await gate.reached(1)
        [run] = await app.runs_for_event(event_id)
        assert run.status == "running"
        assert await app.cancel_runs(function_id="job") == 1
        gate.open()
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "cancelled" and done.error == CANCELLED
    assert [s.id for s in done.steps] == ["work"], "it stopped at its next step"


async def test_runs_created_during_a_cancel_are_not_cancelled(app: tarry.Tarry) -> None:
    waiting(app)
    waiting(app, "cleanup", "tarry/function.cancelled")  # each cancel starts a waiting run, during the call
    async with app:
        runs = await started(app, *[signup(n) for n in range(3)])
        assert await app.cancel_runs(created_after=runs[0].created_at) == 3
        await app.idle(timeout=LIMIT)
        cleanups = await app.list_runs(function_id="cleanup")
    assert len(cleanups) == 3 and all(r.status == "waiting" for r in cleanups)
    assert all(r.created_at == runs[0].created_at for r in cleanups), "made in the same millisecond, yet left alone"


async def test_cancel_runs_pages_through_more_runs_than_one_page(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()
    waiting(app)
    await app.start(worker=False)  # the runs stay queued
    try:
        await app.send([signup(n) for n in range(1203)])
        assert await app.cancel_runs(function_id="signup") == 1203
        assert len(await app.list_runs(status="cancelled", limit=10_000)) == 1203
        assert await app.list_runs(status="queued") == []
    finally:
        await app.close()


async def test_a_run_progresses_while_a_long_cancel_goes_on(make_app: Callable[..., tarry.Tarry]) -> None:
    """A bulk cancel is pages of transactions: a run woken by the first page's work executes and finishes
    while the later pages are still to come."""
    app = make_app()
    waiting(app, throttle=tarry.Throttle(limit=1, period="1d"))  # the first run waits, the others stay queued
    progressed: list[str] = []

    @app.function(trigger="watch/start")
    async def watcher(ctx: tarry.Context) -> None:
        first = ctx.event.data["first"]
        await ctx.step.wait_for_event("first-cancelled", event="tarry/function.cancelled", timeout="1d",
                                      if_exp=f"async.data.run_id == '{first}'")  # fmt: skip
        await ctx.step.run("noted", lambda: progressed.append("noted"))

    async with app:
        await app.send([signup(n) for n in range(1600)])
        await app.idle(timeout=LIMIT)
        oldest = (await app.list_runs(function_id="signup", limit=10_000))[-1]
        [watch] = await app.send(tarry.Event("watch/start", {"first": oldest.id}))
        await app.idle(timeout=LIMIT)
        [watch_run] = await app.runs_for_event(watch)
        bulk = asyncio.ensure_future(app.cancel_runs(function_id="signup"))
        done = await app.wait_for_run(watch_run.id, timeout=LIMIT)
        still_going = not bulk.done()
        count = await bulk
    assert done.status == "completed" and progressed == ["noted"]
    assert count == 1600
    assert still_going, "the watcher finished only after the whole cancel: it waited for the bulk action"


# -- rerun_runs -----------------------------------------------------------------------------


def flaky(app: tarry.Tarry, broken: set[int], function_id: str = "charge") -> None:
    """A function whose runs fail while their ``data.n`` is in ``broken``."""

    @app.function(trigger="shop/charge", id=function_id, retries=0)
    async def charge(ctx: tarry.Context) -> int:
        n = int(ctx.event.data["n"])

        def attempt() -> int:
            if n in broken:
                raise RuntimeError(f"card {n} declined")
            return n

        return int(await ctx.step.run("charge", attempt))


def order(n: int, **data: Any) -> tarry.Event:
    return tarry.Event("shop/charge", {"n": n, **data})


async def test_rerun_runs_reruns_the_failed_runs_oldest_first(app: tarry.Tarry, clock: VirtualClock) -> None:
    broken = {1, 2, 3}
    flaky(app, broken)
    async with app:
        runs = []
        for n in (3, 1, 4, 2):  # created one after the other: 3, 1, 4, 2
            runs.extend(await started(app, order(n)))
            await clock.advance("1s")
        assert await statuses(app, runs) == ["failed", "failed", "completed", "failed"]
        broken.clear()
        new_ids = await app.rerun_runs(function_id="charge")
        reruns = [await app.wait_for_run(i, timeout=LIMIT) for i in new_ids]
    assert [r.rerun_of for r in reruns] == [runs[0].id, runs[1].id, runs[3].id], "oldest original first"
    assert [r.output for r in reruns] == [3, 1, 2] and all(r.status == "completed" for r in reruns)
    assert new_ids == sorted(new_ids), "made in that order"


async def test_rerun_runs_takes_the_status_asked_for(app: tarry.Tarry) -> None:
    broken = {1}
    flaky(app, broken)
    async with app:
        runs = await started(app, order(1), order(2))
        completed = await app.rerun_runs(function_id="charge", status="completed")
        cancelled = await app.rerun_runs(function_id="charge", status=tarry.RunStatus.CANCELLED)
        await app.idle(timeout=LIMIT)
        assert [(await app.get_run(i)).rerun_of for i in completed] == [runs[1].id]  # type: ignore[union-attr]
        assert cancelled == []


async def test_rerun_runs_by_if_exp_and_time_range(app: tarry.Tarry, clock: VirtualClock) -> None:
    broken = {1, 2, 3, 4}
    flaky(app, broken)
    async with app:
        t0 = clock.now()
        runs = await started(app, order(1, card="visa"), order(2, card="amex"))
        await clock.advance("1h")
        runs += await started(app, order(3, card="visa"), order(4, card="visa"))
        broken.clear()
        by_card = await app.rerun_runs(if_exp="event.data.card == 'visa'", created_before=t0 + timedelta(hours=1))
        by_time = await app.rerun_runs(created_after=t0 + timedelta(hours=1))
        await app.idle(timeout=LIMIT)
        origins = [(await app.get_run(i)).rerun_of for i in by_card + by_time]  # type: ignore[union-attr]
    assert origins == [runs[0].id, runs[2].id, runs[3].id]


async def test_the_reruns_made_during_the_call_are_not_rerun(app: tarry.Tarry) -> None:
    broken = {1, 2}
    flaky(app, broken)
    async with app:
        runs = await started(app, order(1), order(2))
        new_ids = await app.rerun_runs(created_after=runs[0].created_at)  # they fail again, during the call
        await app.idle(timeout=LIMIT)
        failed = await app.list_runs(status="failed")
    assert len(new_ids) == 2 and len(failed) == 4


async def test_rerun_runs_leaves_out_runs_of_functions_no_longer_registered(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    before = make_app()
    flaky(before, {1}, "old-charge")
    flaky(before, {1}, "charge")
    async with before:
        [event_id] = await before.send(order(1))
        await before.idle(timeout=LIMIT)
        runs = await before.runs_for_event(event_id)
        assert sorted(r.function_id for r in runs) == ["charge", "old-charge"]
    after = make_app()
    flaky(after, set(), "charge")
    async with after:
        new_ids = await after.rerun_runs(created_after=runs[0].created_at)
        done = [await after.wait_for_run(i, timeout=LIMIT) for i in new_ids]
    assert [(r.function_id, r.status) for r in done] == [("charge", "completed")]


async def test_rerun_runs_pages_through_more_runs_than_one_page(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()
    waiting(app)
    await app.start(worker=False)  # nothing executes: the runs stay queued, then cancelled, the reruns queued
    try:
        await app.send([signup(n) for n in range(1107)])
        assert await app.cancel_runs(function_id="signup") == 1107
        originals = list(reversed(await app.list_runs(function_id="signup", limit=10_000)))
        new_ids = await app.rerun_runs(function_id="signup", status="cancelled")
        assert len(new_ids) == 1107
        reruns = [await app.get_run(i) for i in new_ids[:3] + new_ids[-3:]]
        assert [r.rerun_of for r in reruns if r] == [r.id for r in originals[:3] + originals[-3:]]
        assert len(await app.list_runs(status="queued", limit=10_000)) == 1107
    finally:
        await app.close()


async def test_the_sync_twins(app: tarry.Tarry) -> None:
    broken = {1}
    flaky(app, broken)
    waiting(app)
    async with app:
        [failed] = await started(app, order(1))
        [wait] = await started(app, signup(1))
        broken.clear()
        [new_id] = await asyncio.to_thread(app.rerun_runs_sync, function_id="charge")
        assert await asyncio.to_thread(app.cancel_runs_sync, function_id="signup") == 1
        rerun = await app.wait_for_run(new_id, timeout=LIMIT)
        assert rerun.rerun_of == failed.id and await statuses(app, [wait]) == ["cancelled"]


# -- bad filters ------------------------------------------------------------------------------


NAIVE = datetime(2026, 1, 1)


@pytest.mark.parametrize(
    ("filters", "error", "problem"),
    [
        ({}, ValueError, "needs at least one filter: function_id, if_exp, created_after or created_before"),
        ({"created_after": NAIVE}, ValueError, "invalid created_after"),
        ({"created_before": NAIVE}, ValueError, "invalid created_before"),
        ({"created_before": "2026-01-01T00:00:00Z"}, ValueError, "invalid created_before"),
        ({"function_id": 3}, ValueError, "invalid function_id 3"),
        ({"function_id": ""}, ValueError, "invalid function_id ''"),
        ({"if_exp": "event.data.plan =="}, tarry.ExpressionError, "if_exp"),
        ({"if_exp": "async.data.plan == 'free'"}, tarry.ExpressionError, "names only event"),
        ({"if_exp": 3}, tarry.ExpressionError, "if_exp"),
        ({"function_id": "signup", "status": "done"}, ValueError, "invalid status 'done'"),
        ({"function_id": "signup", "status": "waiting"}, ValueError, "invalid status 'waiting'"),
        ({"function_id": "signup", "status": None}, ValueError, "invalid status None"),
        ({"function_id": "signup", "status": ["failed"]}, ValueError, "invalid status"),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_a_bad_filter_raises_and_changes_nothing(
    app: tarry.Tarry, filters: dict[str, Any], error: type[Exception], problem: str
) -> None:
    waiting(app)
    async with app:
        runs = await started(app, signup(1), signup(2, done=True))
        before = await app.list_runs(limit=10_000)
        if "status" in filters:
            with pytest.raises(error, match=problem.replace("(", r"\(")):
                await app.rerun_runs(**filters)
        else:
            for action in (app.cancel_runs, app.rerun_runs):
                with pytest.raises(error, match=problem.replace("(", r"\(")):
                    await action(**filters)
        assert await app.list_runs(limit=10_000) == before
        assert await statuses(app, runs) == ["waiting", "completed"]
