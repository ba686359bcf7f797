"""The app the multi-process failure-handler test runs in `tarry worker` processes.

The handler's step writes one row to ``effects`` per execution of its body, so a test can tell how many
times each failed run was handled.
"""

from __future__ import annotations

import os

import psycopg

import tarry

#: a few slots per process, so that neither worker can claim every run of a burst alone: both must take part
app = tarry.Tarry(
    "failures", database_url=os.environ.get("TARRY_DATABASE_URL", "postgresql://localhost/tarry"), concurrency=4
)


def record_handled(handler_run: str, failed_run: str) -> str:
    with psycopg.connect(app.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO effects (run_id, step, n, pid) VALUES (%s, %s, 1, %s)", (failed_run, handler_run, os.getpid())
        )
    return failed_run


async def on_charge_failure(ctx: tarry.Context) -> str:
    return await ctx.step.run("handled", record_handled, ctx.run_id, ctx.event.data["run_id"])


@app.function(trigger="shop/charge", retries=0, on_failure=on_charge_failure)
async def charge(ctx: tarry.Context) -> None:
    await ctx.step.run("charge", lambda: None)
    raise RuntimeError(f"card declined for order {ctx.event.data['n']}")
