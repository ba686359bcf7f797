"""Durability: closing and reopening on one file, and a process killed mid-step."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, sqlite_url, start_run
from tests.scenarios import crash_app

ROOT = Path(__file__).resolve().parents[2]


def define(app: tarry.Tarry, calls: list[str]) -> None:
    @app.function(trigger="trial/started")
    async def trial(ctx: tarry.Context) -> str:
        await ctx.step.run("welcome", lambda: calls.append("welcome") or "sent")
        await ctx.step.sleep("wait-a-day", "1d")
        await ctx.step.run("remind", lambda: calls.append("remind") or "sent")
        return "reminded " + ctx.event.data["user"]


async def test_queued_and_sleeping_runs_survive_a_restart(make_app, clock: VirtualClock) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    first = make_app()
    define(first, calls)
    async with first:
        sleeping = await start_run(first, tarry.Event("trial/started", {"user": "ada"}))
        assert sleeping.status == "sleeping"

    sender = make_app()  # a process without a worker: its runs stay queued
    define(sender, calls)
    await sender.start(worker=False)
    [queued_event] = await sender.send(tarry.Event("trial/started", {"user": "bob"}))
    [queued] = await sender.runs_for_event(queued_event)
    await sender.close()
    assert queued.status == "queued"

    second = make_app()
    define(second, calls)
    async with second:
        await second.idle(timeout=LIMIT)
        assert (await second.get_run(queued.id)).status == "sleeping"
        await clock.advance("1d")
        done = [await second.wait_for_run(r, timeout=LIMIT) for r in (sleeping.id, queued.id)]
    assert [r.output for r in done] == ["reminded ada", "reminded bob"]
    assert sorted(calls) == ["remind", "remind", "welcome", "welcome"], "no finished step ran twice"


async def test_a_run_in_flight_when_the_app_closes_resumes_in_the_next(make_app) -> None:  # type: ignore[no-untyped-def]
    counts = {"one": 0, "two": 0}
    blocked = asyncio.Event()

    def define_blocking(app: tarry.Tarry, block: bool) -> None:
        @app.function(trigger="go")
        async def flow(ctx: tarry.Context) -> int:
            async def one() -> int:
                counts["one"] += 1
                return 1

            async def two() -> int:
                counts["two"] += 1
                if block:
                    blocked.set()
                    await asyncio.sleep(3600)
                return 2

            return await ctx.step.run("one", one) + await ctx.step.run("two", two)

    first = make_app()
    define_blocking(first, block=True)
    async with first:
        [event_id] = await first.send(tarry.Event("go"))
        await asyncio.wait_for(blocked.wait(), LIMIT)
    second = make_app()
    define_blocking(second, block=False)
    async with second:
        [run] = await second.runs_for_event(event_id)
        done = await second.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == 3
    assert counts == {"one": 1, "two": 2}, "step one was recorded; the interrupted step two ran again"


def test_a_process_killed_mid_step_loses_nothing_and_resumes_from_its_last_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url(tmp_path)
    env = {**os.environ, "CRASH_BLOCK": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.scenarios.crash_app", url, str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        event_id = child.stdout.readline().strip()
        assert event_id, child.stderr.read() if child.stderr else ""
        deadline = time.monotonic() + LIMIT
        while not (tmp_path / "two.log").exists():  # the run is inside step two
            assert time.monotonic() < deadline and child.poll() is None, "the child never reached step two"
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    monkeypatch.setenv("TARRY_WORKER_LEASE", "300ms")  # the dead worker's runs are taken over after this

    async def recover() -> tarry.Run:
        app = tarry.Tarry("crash", database_url=url)
        crash_app.define(app, tmp_path)
        async with app:
            [run] = await app.runs_for_event(event_id)
            return await app.wait_for_run(run.id, timeout=LIMIT)

    done = asyncio.run(recover())
    assert done.status == "completed" and done.output == "first+second"
    assert (tmp_path / "one.log").read_text() == "one\n", "step one was recorded before the kill: never again"
    assert (tmp_path / "two.log").read_text() == "two\ntwo\n", "step two was interrupted, so it ran again"
    assert [s.id for s in done.steps] == ["one", "two"]
