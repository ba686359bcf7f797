"""A cancelled run's error names what cancelled it (API §4), and runs_for_event carries each run's steps."""

from __future__ import annotations

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


def waiting(app: tarry.Tarry, **options: object) -> None:
    @app.function(trigger="job/start", **options)  # type: ignore[arg-type]
    async def job(ctx: tarry.Context) -> None:
        await ctx.step.run("first", lambda: None)
        await ctx.step.wait_for_event("never", event="job/never", timeout="1h", on_timeout="cancel")


async def test_cancel_run_is_named(app: tarry.Tarry) -> None:
    waiting(app)
    async with app:
        run = await start_run(app, tarry.Event("job/start"))
        assert await app.cancel_run(run.id)
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.error == {"name": "Cancelled", "message": "cancelled by cancel_run"}


async def test_a_cancel_on_event_is_named(app: tarry.Tarry) -> None:
    waiting(app, cancel_on=[tarry.CancelOn(event="job/stop")])
    async with app:
        run = await start_run(app, tarry.Event("job/start"))
        [stop] = await app.send(tarry.Event("job/stop"))
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "cancelled" and done.error is not None
    assert done.error["message"] == f"cancelled by a cancel_on event (job/stop {stop})"


async def test_a_wait_timing_out_with_on_timeout_cancel_is_named(app: tarry.Tarry, clock: VirtualClock) -> None:
    waiting(app)
    async with app:
        run = await start_run(app, tarry.Event("job/start"))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.error == {"name": "Cancelled", "message": "the wait 'never' timed out (on_timeout='cancel')"}


async def test_runs_for_event_returns_each_runs_steps(app: tarry.Tarry) -> None:
    waiting(app)
    async with app:
        [event_id] = await app.send(tarry.Event("job/start"))
        await app.idle(timeout=LIMIT)
        [run] = await app.runs_for_event(event_id)
    assert [(s.id, s.status) for s in run.steps] == [("first", "completed"), ("never", "waiting")]
