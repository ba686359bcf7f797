"""Helpers for testing Tarry apps: ``VirtualClock`` walks through days of waiting in milliseconds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from tarry._clock import to_datetime, wait_or_timeout
from tarry._clock import to_ms as datetime_to_ms
from tarry._durations import Duration, to_ms


class VirtualClock:
    """A clock that stands still until ``advance`` moves it.

    Pass it as ``Tarry(..., clock=clock)``. ``await clock.advance("3d")``
    fires every sleep, timeout, retry and delayed event that comes due, in
    time order (while one fires, the clock reads its due time), then returns
    once every app on this clock is idle.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("VirtualClock start must be an aware datetime (with a timezone)")
        self._ms = datetime_to_ms(start)
        self._apps: list[Any] = []

    def now(self) -> datetime:
        """The clock's time, as an aware UTC datetime."""
        moment = to_datetime(self._ms)
        assert moment is not None
        return moment

    def now_ms(self) -> int:
        """The clock's time, in epoch milliseconds."""
        return self._ms

    async def wait(self, wake: asyncio.Event, until_ms: int | None, poll_s: float) -> None:
        """For the worker: return at once if ``until_ms`` has come, else when woken or after ``poll_s``."""
        if until_ms is not None and until_ms <= self._ms:
            return
        await wait_or_timeout(wake, poll_s)

    def attach(self, app: object) -> None:
        """Called by an app on this clock when it starts, so that ``advance`` waits for it."""
        self._apps.append(app)

    def detach(self, app: object) -> None:
        """Called by that app when it closes."""
        if app in self._apps:
            self._apps.remove(app)

    async def advance(self, duration: Duration, *, timeout: float = 30) -> None:
        """Move time forward by ``duration``, firing what comes due on the way, then wait for idle."""
        target = self._ms + to_ms(duration, what="advance duration")
        await self._settle(timeout)
        while True:
            dues = [due for app in list(self._apps) if (due := await app._next_due()) is not None]
            if not dues or min(dues) > target:
                break
            self._ms = max(self._ms, min(dues))
            await self._settle(timeout)
        self._ms = target
        await self._settle(timeout)

    async def _settle(self, timeout: float) -> None:
        for app in list(self._apps):
            app._wake()
        for app in list(self._apps):
            await app.idle(timeout=timeout)


__all__ = ["VirtualClock"]
