"""A Tarry app served beside SDK functions: an SDK function invokes ``billing`` by its id."""

from __future__ import annotations

from typing import Any

import tarry

app = tarry.Tarry("local")


@app.function(trigger="local/bill")
async def billing(ctx: tarry.Context) -> dict[str, Any]:
    total = await ctx.step.run("total", lambda: ctx.event.data["n"] * 10)
    return {"total": total, "event": ctx.event.name}
