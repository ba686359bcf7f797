"""The engine's sense of time: every timestamp Tarry records comes from a Clock.

``SystemClock`` reads the wall clock; ``tarry.testing.VirtualClock`` stands
still until a test advances it. The worker asks the clock how to wait for
its next timer, so timers follow whichever clock the app was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Epoch milliseconds now."""

    async def wait(self, wake: asyncio.Event, until_ms: int | None, poll_s: float) -> None:
        """Return when ``wake`` is set, the time reaches ``until_ms``, or ``poll_s`` passed."""

    def attach(self, app: object) -> None:
        """Called when an app using this clock starts."""

    def detach(self, app: object) -> None:
        """Called when that app closes."""


class SystemClock:
    """The wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def wait(self, wake: asyncio.Event, until_ms: int | None, poll_s: float) -> None:
        delay = poll_s
        if until_ms is not None:
            delay = min(delay, max(0.0, (until_ms - self.now_ms()) / 1000))
        if delay <= 0:
            return
        await wait_or_timeout(wake, delay)

    def attach(self, app: object) -> None:
        pass

    def detach(self, app: object) -> None:
        pass


async def wait_or_timeout(wake: asyncio.Event, seconds: float) -> None:
    """Wait for ``wake`` at most ``seconds``.

    ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11, ``wait_for``
    loses a cancellation that arrives as the event is set, and a worker that
    cannot be cancelled never stops.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()


def to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)
