"""The app of the console-live benchmark: runs that wait for their own release, and one run that sleeps."""

from __future__ import annotations

from typing import Any

import tarry

app = tarry.Tarry("console-bench")


@app.function(trigger="bench/hold")
async def hold(ctx: tarry.Context) -> Any:
    released = await ctx.step.wait_for_event("release", event="bench/release", match="data.n", timeout="1d")
    return None if released is None else released.data


@app.function(trigger="bench/nap")
async def nap(ctx: tarry.Context) -> str:
    for step in ("fetch", "transform", "load"):
        await ctx.step.run(step, lambda: {"rows": 3})
    await ctx.step.sleep("nap", "1d")
    return "rested"
