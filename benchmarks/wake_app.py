"""The app of ``python -m benchmarks wake``: one function whose first step notes when it ran."""

from __future__ import annotations

import time

import tarry

app = tarry.Tarry("bench-wake")


@app.function(trigger="bench/wake")
async def picked_up(ctx: tarry.Context) -> int:
    at: int = await ctx.step.run("picked-up", time.time_ns)
    return at
