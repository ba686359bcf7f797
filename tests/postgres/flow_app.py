"""The app the multi-process flow-control test runs in `tarry worker` processes.

Each step body writes the interval it ran in to a table of its own (``spans``), so a test can tell
how many bodies of one partition overlapped and how many times each run's body ran.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg

import tarry

app = tarry.Tarry("flow", database_url=os.environ.get("TARRY_DATABASE_URL", "postgresql://localhost/tarry"))
BODY_S = 0.04  # long enough that runs of one key overlap unless something holds them apart
LIMIT = 2


def work(function: str, run_id: str, key: str) -> str:
    """Sleep in real time and record the span; CLOCK_MONOTONIC is one clock for every process here."""
    began = time.monotonic()
    time.sleep(BODY_S)
    ended = time.monotonic()
    with psycopg.connect(app.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO spans (function, run_id, key, began, ended, pid) VALUES (%s, %s, %s, %s, %s, %s)",
            (function, run_id, key, began, ended, os.getpid()),
        )
    return key


@app.function(trigger="flow/limited", retries=0, concurrency=tarry.Concurrency(limit=LIMIT, key="event.data.key"))
async def limited(ctx: tarry.Context) -> Any:
    return await ctx.step.run("work", work, "limited", ctx.run_id, ctx.event.data["key"])


@app.function(trigger="flow/free", retries=0)
async def free(ctx: tarry.Context) -> Any:
    return await ctx.step.run("work", work, "free", ctx.run_id, ctx.event.data["key"])
