"""A small shop's workflows: an order is charged, shipped by a run of its own, then a review is asked for.

It shows most of what the console displays: a step that fails and is retried (a declined card), an
``invoke`` of another function, a sleep that wakes later, a refund waiting for a manager's resume URL, a
cart that waits for an order, and a throttled report that queues. ``./scripts/screenshots`` serves it and
photographs the console; ``tarry dev examples/shop.py:app`` serves it for you to send events to.
"""

from __future__ import annotations

from typing import Any

import tarry

app = tarry.Tarry("shop")  # the store: TARRY_DATABASE_URL, else ./.tarry/tarry.db
DECLINED = "4000-0000-0000-0002"


def charge_card(order: dict[str, Any]) -> dict[str, Any]:
    if order.get("card") == DECLINED:
        raise ValueError(f"card ending {DECLINED[-4:]} was declined by the bank")
    return {"charged": order.get("total", 0), "currency": "EUR"}


@app.function(trigger="shop/shipment.requested")
async def create_shipment(ctx: tarry.Context) -> dict[str, Any]:
    order_id = ctx.event.data["orderId"]
    label = await ctx.step.run("print-label", lambda: f"LBL-{order_id}")
    return {"label": label, "carrier": "PostNL"}


@app.function(trigger="shop/order.placed", retries=2)
async def fulfil_order(ctx: tarry.Context) -> dict[str, Any]:
    order = ctx.event.data
    receipt = await ctx.step.run("charge-card", charge_card, order)
    shipment = await ctx.step.invoke("ship", create_shipment, {"orderId": order["orderId"]})
    await ctx.step.sleep("wait-for-delivery", order.get("delivery", "2d"))
    await ctx.step.run("ask-for-review", lambda: f"review request sent for {order['orderId']}")
    return {"receipt": receipt, "shipment": shipment}


@app.function(trigger="shop/refund.requested")
async def refund_approval(ctx: tarry.Context) -> dict[str, Any]:
    handle = await ctx.step.resume_url("approval-link", timeout="24h", payload={"orderId": ctx.event.data["orderId"]})
    decision = await ctx.step.wait_for_resume("wait-for-manager", handle)
    answer = (decision or {}).get("event") or {}
    return {"orderId": ctx.event.data["orderId"], "refunded": bool(answer.get("approved"))}


@app.function(trigger="shop/cart.abandoned")
async def cart_reminder(ctx: tarry.Context) -> str:
    ordered = await ctx.step.wait_for_event("wait-for-order", event="shop/order.placed", match="data.cartId",
                                            timeout="1h")  # fmt: skip
    return "ordered" if ordered else "reminder sent"


@app.function(trigger="shop/report.requested", throttle=tarry.Throttle(limit=1, period="1h"))
async def daily_report(ctx: tarry.Context) -> str:
    built: str = await ctx.step.run("build", lambda: "report built")
    return built
