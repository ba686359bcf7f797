"""The app the console's browser tests drive: one function for each thing the dashboard must show.

A sleep, a step that fails with a traceback, a retry that waits, an ``invoke`` of a child, a resume URL,
a ``wait_for_event``, flow control (a throttle that queues, a rate limit that skips, a debounce that gathers), an output over
64 KiB, a few plain steps to rerun from, and a function whose runs wait so that many can be cancelled.
"""

from __future__ import annotations

from typing import Any

import tarry

app = tarry.Tarry("console-tests")


def refuse(card: str) -> None:
    raise ValueError(f"card {card} was declined")


@app.function(trigger="console/nap.requested")
async def nap(ctx: tarry.Context) -> str:
    await ctx.step.run("prepare", lambda: "ready")
    await ctx.step.sleep("nap", ctx.event.data.get("for", "10min"))
    return "rested"


@app.function(trigger="console/charge.requested", retries=1)
async def charge(ctx: tarry.Context) -> None:
    await ctx.step.run("charge-card", refuse, ctx.event.data.get("card", "4242"))


def later() -> None:
    raise tarry.RetryAfterError("the bank is closed", "10min")


@app.function(trigger="console/settle.requested")
async def settle(ctx: tarry.Context) -> None:
    await ctx.step.run("settle", later)


@app.function(trigger="console/child.requested")
async def child(ctx: tarry.Context) -> dict[str, Any]:
    return {"doubled": 2 * int(ctx.event.data.get("n", 1))}


@app.function(trigger="console/parent.requested")
async def parent(ctx: tarry.Context) -> Any:
    return await ctx.step.invoke("call-child", child, {"n": 21})


@app.function(trigger="console/approval.requested")
async def approval(ctx: tarry.Context) -> Any:
    handle = await ctx.step.resume_url("approval-link", timeout="1d")
    decision = await ctx.step.wait_for_resume("wait-for-approval", handle)
    return None if decision is None else decision["event"]


@app.function(trigger="console/order.placed")
async def order(ctx: tarry.Context) -> Any:
    paid = await ctx.step.wait_for_event("wait-for-payment", event="console/order.paid", match="data.orderId",
                                         timeout="1d")  # fmt: skip
    return None if paid is None else paid.data


@app.function(trigger="console/report.requested", throttle=tarry.Throttle(limit=1, period="1h"))
async def report(ctx: tarry.Context) -> str:
    return "built"


@app.function(trigger="console/sms.requested", rate_limit=tarry.RateLimit(limit=1, period="1h"))
async def sms(ctx: tarry.Context) -> str:
    return "sent"


@app.function(trigger="console/cart.changed", debounce=tarry.Debounce(period="1h", key="event.data.cartId"))
async def cart(ctx: tarry.Context) -> int:
    return len(ctx.events)


@app.function(trigger="console/export.requested")
async def export(ctx: tarry.Context) -> str:
    return await ctx.step.run("build-export", lambda: "x" * 100_000)  # 100 KB of JSON: over 64 KiB


@app.function(trigger="console/pipeline.started")
async def pipeline(ctx: tarry.Context) -> dict[str, Any]:
    fetched = await ctx.step.run("fetch", lambda: {"rows": 3})
    shaped = await ctx.step.run("transform", lambda: {"rows": fetched["rows"] * 2})
    await ctx.step.run("load", lambda: "loaded")
    return shaped


@app.function(trigger="console/hold.requested")
async def hold(ctx: tarry.Context) -> Any:
    return await ctx.step.wait_for_event("wait-for-release", event="console/hold.released", timeout="7d")


@app.function(trigger="console/quick.requested")
async def quick(ctx: tarry.Context) -> str:
    await ctx.step.run("work", lambda: "done")
    return "done"
