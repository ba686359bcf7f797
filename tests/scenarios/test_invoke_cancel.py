"""step.invoke and cancel_on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


def children(app: tarry.Tarry) -> None:
    @app.function(trigger="never/triggered", retries=0)
    async def compute(ctx: tarry.Context) -> int:
        if ctx.event.data.get("fail"):
            raise ValueError("cannot compute " + str(ctx.event.data["x"]))
        if ctx.event.data.get("slow"):
            await ctx.step.sleep("slow", "2h")
        return int(ctx.event.data["x"]) * 2


async def test_invoke_returns_the_childs_output(app: tarry.Tarry) -> None:
    children(app)

    @app.function(trigger="parent/start")
    async def parent(ctx: tarry.Context) -> list[int]:
        by_id = await ctx.step.invoke("by-id", "compute", data={"x": 2})
        by_fn = await ctx.step.invoke("by-function", compute_fn, data={"x": 5})
        return [by_id, by_fn]

    compute_fn = app_functions(app)["compute"]
    async with app:
        run = await start_run(app, tarry.Event("parent/start"), "parent")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        children_runs = await app.list_runs(function_id="compute")
    assert done.output == [4, 10]
    assert len(children_runs) == 2 and all(r.event.name == "tarry/function.invoked" for r in children_runs)
    assert [s.kind for s in done.steps] == ["invoke", "invoke"]


def app_functions(app: tarry.Tarry) -> dict[str, Any]:
    return {spec.id: spec.fn for spec in app._registry.functions.values()}


async def test_invoke_of_a_failing_child_raises_step_error(app: tarry.Tarry) -> None:
    children(app)

    @app.function(trigger="parent/start")
    async def parent(ctx: tarry.Context) -> str:
        try:
            await ctx.step.invoke("child", "compute", data={"x": 3, "fail": True})
        except tarry.StepError as err:
            return f"{err.name}: {err.message}"
        return "no error"

    async with app:
        run = await start_run(app, tarry.Event("parent/start"), "parent")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "ValueError: cannot compute 3"


async def test_invoke_with_a_timeout(app: tarry.Tarry, clock: VirtualClock) -> None:
    children(app)

    @app.function(trigger="parent/start")
    async def parent(ctx: tarry.Context) -> str:
        try:
            await ctx.step.invoke("child", "compute", data={"x": 1, "slow": True}, timeout="1h")
        except tarry.StepError as err:
            return err.name
        return "finished"

    async with app:
        run = await start_run(app, tarry.Event("parent/start"), "parent")
        assert run.status == "waiting"
        await clock.advance("1h")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == "WaitTimeoutError"


async def test_invoke_of_an_unknown_function_is_refused(app: tarry.Tarry) -> None:
    @app.function(trigger="parent/start")
    async def parent(ctx: tarry.Context) -> None:
        await ctx.step.invoke("child", "no-such-function")

    async with app:
        run = await start_run(app, tarry.Event("parent/start"))
    assert run.status == "failed" and "no-such-function" in run.error["message"]


def cancellable(app: tarry.Tarry, after: list[str]) -> None:
    @app.function(
        trigger="sub/created",
        cancel_on=[tarry.CancelOn(event="sub/deleted", match="data.userId"),
                   tarry.CancelOn(event="sub/banned", if_exp="async.data.who == event.data.userId", timeout="1d")],
    )  # fmt: skip
    async def drip(ctx: tarry.Context) -> str:
        await ctx.step.sleep("wait", "7d")
        after.append(ctx.event.data["userId"])
        return "sent"


async def test_cancel_on_cancels_a_sleeping_run_of_the_matching_user(app: tarry.Tarry, clock: VirtualClock) -> None:
    after: list[str] = []
    cancellable(app, after)
    async with app:
        ada = await start_run(app, tarry.Event("sub/created", {"userId": "ada"}))
        bob = await start_run(app, tarry.Event("sub/created", {"userId": "bob"}))
        await app.send(tarry.Event("sub/deleted", {"userId": "ada"}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(ada.id)).status == "cancelled"
        assert (await app.get_run(bob.id)).status == "sleeping"
        await clock.advance("7d")
        assert (await app.wait_for_run(bob.id, timeout=LIMIT)).status == "completed"
    assert after == ["bob"]


async def test_cancel_on_with_if_exp_and_its_timeout(app: tarry.Tarry, clock: VirtualClock) -> None:
    after: list[str] = []
    cancellable(app, after)
    async with app:
        early = await start_run(app, tarry.Event("sub/created", {"userId": "eve"}))
        await app.send(tarry.Event("sub/banned", {"who": "eve"}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(early.id)).status == "cancelled"
        late = await start_run(app, tarry.Event("sub/created", {"userId": "mal"}))
        await clock.advance("2d")  # the ban listener stopped after 1d
        await app.send(tarry.Event("sub/banned", {"who": "mal"}))
        await app.idle(timeout=LIMIT)
        assert (await app.get_run(late.id)).status == "sleeping"


async def test_cancel_on_a_running_run_stops_it_at_its_next_step(app: tarry.Tarry) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    ran: list[str] = []

    @app.function(trigger="job/start", cancel_on=[tarry.CancelOn(event="job/stop", match="data.id")])
    async def job(ctx: tarry.Context) -> None:
        async def first() -> None:
            inside.set()
            await asyncio.wait_for(release.wait(), LIMIT)

        await ctx.step.run("first", first)
        await ctx.step.run("second", lambda: ran.append("second"))

    async with app:
        [event_id] = await app.send(tarry.Event("job/start", {"id": 1}))
        await asyncio.wait_for(inside.wait(), LIMIT)
        await app.send(tarry.Event("job/stop", {"id": 1}))
        release.set()
        [run] = await app.runs_for_event(event_id)
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "cancelled" and ran == []


@pytest.mark.parametrize(
    ("cancel_on", "problem"),
    [
        (tarry.CancelOn(event=""), "invalid event"),
        (tarry.CancelOn(event="x", match="userId"), "invalid match"),
        (tarry.CancelOn(event="x", if_exp="nope =="), "invalid expression"),
        (tarry.CancelOn(event="x", timeout="1 month"), "cancel_on timeout"),
    ],
)
def test_bad_cancel_on_is_refused_at_decoration(app: tarry.Tarry, cancel_on: tarry.CancelOn, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):

        @app.function(trigger="x", cancel_on=[cancel_on])
        async def fn(ctx: tarry.Context) -> None: ...

    assert app.functions == []
