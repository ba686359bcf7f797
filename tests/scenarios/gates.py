"""Helpers for the flow-control scenarios: a gate that keeps step bodies executing until the test opens it.

A run held inside a gate is *executing* (it holds its concurrency slot), so how many runs are inside at
once is what the limits decide; the test reads that without any clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import tarry
from tests.conftest import LIMIT

#: real seconds given to a wrong implementation to start one run too many (the only real pause)
SETTLE = 0.3


class Gate:
    """``await ctx.step.run("work", gate.hold, name)`` stays inside until ``open()`` (or ``open(name)``)."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.inside = 0
        self.most = 0
        self._all = False
        self._doors: dict[str, asyncio.Event] = {}

    def _door(self, name: str) -> asyncio.Event:
        door = self._doors.setdefault(name, asyncio.Event())
        if self._all:
            door.set()
        return door

    async def hold(self, name: str) -> str:
        self.entered.append(name)
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            door = self._door(name)
            if not door.is_set():
                await asyncio.wait_for(door.wait(), LIMIT)
        finally:
            self.inside -= 1
        return name

    def open(self, name: str | None = None) -> None:
        """Let ``name`` out (and in, if it comes later); without a name, everyone, now and later."""
        if name is None:
            self._all = True
            for door in self._doors.values():
                door.set()
        else:
            self._door(name).set()

    async def reached(self, count: int) -> None:
        """Return once ``count`` step bodies have entered (in all)."""
        await eventually(lambda: _true(len(self.entered) >= count), f"{count} entered the gate ({self.entered})")

    async def stays(self, count: int, seconds: float = SETTLE) -> None:
        """Give the worker a moment to let in more than it should, then check that exactly ``count`` entered."""
        await asyncio.sleep(seconds)
        assert len(self.entered) == count, self.entered


async def _true(value: bool) -> bool:
    return value


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds (``AssertionError`` naming ``what`` after LIMIT real seconds)."""
    deadline = time.monotonic() + LIMIT
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {LIMIT} s: {what}")
        await asyncio.sleep(0.01)


async def one_run(app: tarry.Tarry, event_id: str) -> tarry.Run:
    """The one run ``event_id`` started (it must have started exactly one)."""
    runs = await app.runs_for_event(event_id)
    assert len(runs) == 1, runs
    return runs[0]


async def all_queued(app: tarry.Tarry, event_ids: list[str], reason: str | None = None) -> list[tarry.Run]:
    """Wait until each event has started its one run and every such run is ``queued`` (held for ``reason``,
    when given: a run may be queued a moment before a claim looks at it); return them in order."""

    async def check() -> bool:
        runs = [await app.runs_for_event(i) for i in event_ids]
        return all(
            len(r) == 1 and r[0].status == "queued" and (reason is None or r[0].queued_reason == reason) for r in runs
        )

    await eventually(check, f"runs of {event_ids} all queued" + (f" for {reason}" if reason else ""))
    return [await one_run(app, i) for i in event_ids]
