"""The app the multi-process PostgreSQL tests run in `tarry worker` processes.

Its side effects go to a table of their own (``effects``), so a test can count
how many times each run's step body ran.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg

import tarry

app = tarry.Tarry("workers", database_url=os.environ.get("TARRY_DATABASE_URL", "postgresql://localhost/tarry"))


def record_effect(run_id: str, step: str, n: int) -> None:
    with psycopg.connect(app.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO effects (run_id, step, n, pid) VALUES (%s, %s, %s, %s)", (run_id, step, n, os.getpid())
        )


@app.function(trigger="work/start", retries=0)
async def waiter(ctx: tarry.Context) -> Any:
    n = ctx.event.data["n"]
    got = await ctx.step.wait_for_event("w", event="work/go", match="data.n", timeout="1h")
    await ctx.step.run("effect", record_effect, ctx.run_id, "effect", n)
    return None if got is None else got.data["n"]


@app.function(trigger="bench/start", retries=0)
async def bench(ctx: tarry.Context) -> Any:
    got = await ctx.step.wait_for_event("w", event="bench/go", match="data.n", timeout="1h")
    return None if got is None else got.data["n"]


@app.function(trigger="timer/start", retries=0)
async def timed(ctx: tarry.Context) -> str:
    await ctx.step.sleep("nap", "1s")
    await ctx.step.run("effect", record_effect, ctx.run_id, "woke", 1)
    return "woke"


@app.function(trigger="crash/start", retries=0)
async def crashy(ctx: tarry.Context) -> str:
    await ctx.step.run("one", record_effect, ctx.run_id, "one", 1)

    def two() -> str:
        record_effect(ctx.run_id, "two", 2)
        if os.environ.get("CRASH_BLOCK") == "1":
            time.sleep(3600)  # killed here
        return "second"

    second: str = await ctx.step.run("two", two)
    return "first+" + second


@app.function(trigger="drop/start", retries=0)
async def dropper(ctx: tarry.Context) -> str:
    await ctx.step.run("before", record_effect, ctx.run_id, "before", 1)

    def cut_connections() -> None:  # every other connection to this database is terminated mid-run
        with psycopg.connect(app.database_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

    await ctx.step.run("cut", cut_connections)
    await ctx.step.run("after", record_effect, ctx.run_id, "after", 2)
    return "survived"
