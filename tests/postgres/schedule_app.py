"""The app the multi-process schedule test runs in `tarry worker` processes, on one fast clock they share.

Every process reads the same time from the wall clock and two numbers the test gives it
(``SCHEDULE_CLOCK``: the app's epoch milliseconds at a wall-clock instant, and how many times faster
than the wall clock it runs), so a one-minute schedule ticks every few real seconds. Each run's step
body writes the tick it ran for to a table of its own (``ticks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import psycopg

import tarry

SPEED = 30  # one minute of the app's time is two real seconds


class SharedClock:
    """The app's time: ``epoch`` at the wall-clock instant ``wall``, running ``SPEED`` times faster."""

    def __init__(self, setting: str) -> None:
        epoch, wall = setting.split(",")
        self.epoch, self.wall = int(epoch), int(wall)

    def now_ms(self) -> int:
        return self.epoch + (time.time_ns() // 1_000_000 - self.wall) * SPEED

    async def wait(self, wake: asyncio.Event, until_ms: int | None, poll_s: float) -> None:
        delay = poll_s
        if until_ms is not None:
            delay = min(delay, max(0.0, (until_ms - self.now_ms()) / 1000 / SPEED))
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)

    def attach(self, app: object) -> None:
        pass

    def detach(self, app: object) -> None:
        pass


app = tarry.Tarry(
    "schedules",
    database_url=os.environ.get("TARRY_DATABASE_URL", "postgresql://localhost/tarry"),
    clock=SharedClock(os.environ.get("SCHEDULE_CLOCK", f"0,{time.time_ns() // 1_000_000}")),
)


def record(run_id: str, scheduled_at: str) -> None:
    with psycopg.connect(app.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ticks (run_id, scheduled_at, pid) VALUES (%s, %s, %s)", (run_id, scheduled_at, os.getpid())
        )


@app.function(trigger=tarry.Cron("* * * * *"), retries=0)
async def every_minute(ctx: tarry.Context) -> Any:
    return await ctx.step.run("record", record, ctx.run_id, ctx.event.data["scheduled_at"])
