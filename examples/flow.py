"""Calling a rate-limited API from runs: per-customer concurrency, a throttle, and debounced webhooks.

A CRM's API takes at most two calls at once per customer and a few calls a second in all, and answers
"429 Too Many Requests" beyond that. Invoices are pushed to it one run per invoice, held back by
``concurrency`` (two per customer, four in all across the app's functions) and ``throttle``; the CRM's
noisy ``crm/contact.updated`` webhooks (one per field edited) are ``debounce``-d into one sync per
contact. The API client below is a stand-in that counts what it was asked.

Run it with ``.venv/bin/python examples/flow.py`` (the store: TARRY_DATABASE_URL, else ./.tarry/tarry.db),
or serve it with ``tarry dev examples/flow.py:app`` and send the events yourself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import tarry

app = tarry.Tarry("crm-sync")

CALLS_PER_SECOND = 5
PER_CUSTOMER = 2
#: one limit shared by every function that calls the CRM (the same key text, scope="app")
CRM_API = tarry.Concurrency(limit=4, key='"crm-api"', scope="app")


class TooManyRequests(Exception):
    """The API's 429: a call beyond what it takes."""


class FakeCrmClient:
    """Stands in for the CRM's HTTP client: each call takes a moment, and a customer's third call at once is
    refused with ``TooManyRequests``, as the real API does. It keeps what it saw, for the summary."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}  # customer -> calls now
        self.most_in_flight: dict[str, int] = {}
        self.at_once = self.most_at_once = 0  # calls now, and the most ever, of every customer
        self.pushed_at: list[float] = []  # time.monotonic() of every invoice pushed
        self.refused = 0
        self.contacts_fetched: dict[str, int] = {}

    async def _call(self, customer: str | None) -> None:
        if customer is not None and self.in_flight.get(customer, 0) >= PER_CUSTOMER:
            self.refused += 1
            raise TooManyRequests(f"429: {customer} already has {PER_CUSTOMER} calls in flight")
        if customer is not None:
            self.in_flight[customer] = self.in_flight.get(customer, 0) + 1
            self.most_in_flight[customer] = max(self.most_in_flight.get(customer, 0), self.in_flight[customer])
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            await asyncio.sleep(0.2)  # the network
        finally:
            self.at_once -= 1
            if customer is not None:
                self.in_flight[customer] -= 1

    async def push_invoice(self, customer: str, invoice: str, amount: int) -> str:
        self.pushed_at.append(time.monotonic())
        await self._call(customer)
        return f"crm-{invoice}"

    async def fetch_contact(self, contact: str) -> dict[str, Any]:
        await self._call(None)
        self.contacts_fetched[contact] = self.contacts_fetched.get(contact, 0) + 1
        return {"id": contact}


crm = FakeCrmClient()


@app.function(
    trigger="billing/invoice.created",
    concurrency=[tarry.Concurrency(limit=PER_CUSTOMER, key="event.data.customerId"), CRM_API],
    throttle=tarry.Throttle(limit=CALLS_PER_SECOND, period="1s"),
)
async def push_invoice(ctx: tarry.Context) -> str:
    data = ctx.event.data
    receipt: str = await ctx.step.run("push", crm.push_invoice, data["customerId"], data["invoiceId"], data["amount"])
    return receipt


@app.function(
    trigger="crm/contact.updated",
    concurrency=CRM_API,
    debounce=tarry.Debounce(period="2s", key="event.data.contactId", timeout="1m"),
)
async def sync_contact(ctx: tarry.Context) -> dict[str, Any]:
    contact = ctx.event.data["contactId"]
    fields = sorted({event.data["field"] for event in ctx.events})  # every webhook of the burst
    await ctx.step.run("fetch", crm.fetch_contact, contact)  # once for the burst, not once per webhook
    return {"contactId": contact, "webhooks": len(ctx.events), "fields": fields}


async def finished(event_ids: list[str], timeout: float = 30) -> list[tarry.Run]:
    """The runs these events started, once every one has finished, oldest first; a debounced run appears
    only when its burst is over, and then it is the run of each of the burst's events."""
    deadline = time.monotonic() + timeout
    while True:
        started = [await app.runs_for_event(event_id) for event_id in event_ids]
        runs = {run.id: run for found in started for run in found}
        if all(started) and all(run.status in ("completed", "failed", "cancelled") for run in runs.values()):
            return sorted(runs.values(), key=lambda run: run.created_at)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the runs of {len(event_ids)} events did not finish within {timeout} s")
        await asyncio.sleep(0.1)


async def main() -> None:
    async with app:
        customers = ["acme", "globex", "initech"]
        invoices = [
            tarry.Event("billing/invoice.created", {"customerId": c, "invoiceId": f"{c}-{n}", "amount": 100 * n})
            for n in range(1, 5)
            for c in customers
        ]
        invoice_ids = await app.send(invoices)
        print(f"sent {len(invoices)} invoices of {len(customers)} customers")

        edits = [("c-1", "email"), ("c-1", "phone"), ("c-2", "name"), ("c-1", "email"), ("c-1", "title")]
        webhook_ids = []
        for contact, field in edits:  # a user editing two contacts in the CRM, a field at a time
            webhook_ids += await app.send(tarry.Event("crm/contact.updated", {"contactId": contact, "field": field}))
            await asyncio.sleep(0.3)
        print(f"sent {len(edits)} crm/contact.updated webhooks of 2 contacts")

        pushed = await finished(invoice_ids)
        took = max(crm.pushed_at) - min(crm.pushed_at)
        print(f"pushed {sum(run.status == 'completed' for run in pushed)} invoices, the calls spread over {took:.1f} s")
        most = max(crm.most_in_flight.values())
        print(f"most calls at once: {crm.most_at_once} in all, {most} for one customer; refused: {crm.refused}")
        for run in await finished(webhook_ids):
            synced = run.output or {}
            print(
                f"synced {synced.get('contactId')} once for a burst of {synced.get('webhooks')}: {synced.get('fields')}"
            )
    print(f"state kept in {app.database_url}")


if __name__ == "__main__":
    asyncio.run(main())
