"""An order that waits for its payment, then ships: the README's quickstart."""

import tarry

app = tarry.Tarry("orders")  # SQLite at ./.tarry/tarry.db


def reserve_stock(order_id: str) -> str:
    return f"reserved stock for {order_id}"


def ship(order_id: str) -> str:
    print(f"shipping {order_id}")  # your warehouse here
    return f"parcel-{order_id}"


@app.function(trigger="shop/order.placed")
async def fulfil_order(ctx: tarry.Context) -> str:
    order_id = ctx.event.data["orderId"]
    await ctx.step.run("reserve-stock", reserve_stock, order_id)
    payment = await ctx.step.wait_for_event(
        "wait-for-payment", event="shop/payment.received", timeout="1d", match="data.orderId"
    )
    if payment is None:
        return "cancelled: not paid within a day"
    parcel = await ctx.step.run("ship", ship, order_id)
    return f"shipped {order_id} as {parcel}"
