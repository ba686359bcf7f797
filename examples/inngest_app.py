"""An order flow written with Inngest's Python SDK, unchanged, run by Tarry on a SQLite file.

A FastAPI app serves the functions through the SDK; ``tarry dev`` is their
executor. From the repository's root, in two terminals::

    INNGEST_DEV=1 .venv/bin/uvicorn examples.inngest_app:app --port 8000
    .venv/bin/tarry dev --sdk-url http://127.0.0.1:8000/api/inngest

then send an order and, later, its payment (``tarry send`` posts to the dev server)::

    .venv/bin/tarry send shop/order.placed --data '{"orderId": "o-1", "customer": "c-1", "total": 42}'
    .venv/bin/tarry send shop/payment.received --data '{"orderId": "o-1"}'

The run waits for the payment, matched on the order id; a payment sent
before the run reaches its wait still counts (Tarry looks back over the
run's lifetime). Without a payment within a day the order expires; a
``shop/order.cancelled`` event for it cancels the run; a step that raised would
be retried (three times), and a run that fails for good is reported to
``release_stock``, the function's ``on_failure``.
"""

from __future__ import annotations

import datetime
from typing import Any, cast

import fastapi
import inngest
import inngest.fast_api

client = inngest.Inngest(app_id="shop")  # INNGEST_DEV=1: Tarry's dev server on 127.0.0.1:8288


def data(ctx: inngest.Context) -> dict[str, Any]:
    return cast(dict[str, Any], ctx.event.data)


async def reserve(order: dict[str, Any]) -> dict[str, Any]:
    return {"reserved": order["orderId"], "items": order.get("items", 1)}


async def release_stock(ctx: inngest.Context) -> str:
    """Runs once for each run of ``order_flow`` that failed for good (``inngest/function.failed``)."""
    failed = data(ctx)
    return f"released the stock of {failed['event']['data']['orderId']}: {failed['error']['message']}"


@client.create_function(
    fn_id="order-flow",
    trigger=inngest.TriggerEvent(event="shop/order.placed"),
    retries=3,
    concurrency=[inngest.Concurrency(limit=10, key="event.data.customer")],
    cancel=[inngest.Cancel(event="shop/order.cancelled", if_exp="async.data.orderId == event.data.orderId")],
    on_failure=release_stock,
)  # fmt: skip
async def order_flow(ctx: inngest.Context) -> dict[str, Any]:
    order = data(ctx)
    reservation = await ctx.step.run("reserve-stock", reserve, order)
    payment = await ctx.step.wait_for_event(
        "wait-for-payment", event="shop/payment.received", if_exp="async.data.orderId == event.data.orderId",
        timeout=datetime.timedelta(days=1),
    )  # fmt: skip
    if payment is None:
        return {"order": order["orderId"], "status": "expired", "reservation": reservation}
    receipt = await ctx.step.invoke("send-receipt", function=send_receipt, data={"orderId": order["orderId"]})
    await ctx.step.send_event("announce", inngest.Event(name="shop/order.paid", data={"orderId": order["orderId"]}))
    return {"order": order["orderId"], "status": "paid", "receipt": receipt}


@client.create_function(fn_id="send-receipt", trigger=inngest.TriggerEvent(event="shop/receipt.requested"))
async def send_receipt(ctx: inngest.Context) -> str:
    async def mail() -> str:
        return f"receipt for {data(ctx)['orderId']} mailed"

    return await ctx.step.run("mail", mail)


app = fastapi.FastAPI()
inngest.fast_api.serve(app, client, [order_flow, send_receipt])
