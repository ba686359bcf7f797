"""An app whose functions use flow control, served by the dashboard's browser test."""

from __future__ import annotations

import tarry

app = tarry.Tarry("flow-dashboard")


@app.function(trigger="shop/report.requested", throttle=tarry.Throttle(limit=1, period="1h"))
async def build_report(ctx: tarry.Context) -> str:
    return "built"


@app.function(trigger="shop/sms.requested", rate_limit=tarry.RateLimit(limit=1, period="1h"))
async def send_sms(ctx: tarry.Context) -> str:
    return "sent"


@app.function(trigger="shop/cart.changed", debounce=tarry.Debounce(period="1h", key="event.data.cartId"))
async def sync_cart(ctx: tarry.Context) -> int:
    return len(ctx.events)
