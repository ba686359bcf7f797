"""Two runs that wait, on the embedded SQLite default: an onboarding drip and a refund approval.

Run it with ``./scripts/dev``. The onboarding run waits for the user's
``app/onboarding.completed`` event (for up to three days); the refund run
waits for a manager to open its resume URL. The script plays the user and the
manager, so you see each run wait and then resume.
"""

from __future__ import annotations

import asyncio
from typing import Any

import tarry

app = tarry.Tarry("examples")  # the store: TARRY_DATABASE_URL, else ./.tarry/tarry.db
outbox: dict[str, str] = {}  # order id -> the resume URL "emailed" to the manager


@app.function(trigger="app/account.created")
async def onboarding_drip(ctx: tarry.Context) -> str:
    user = ctx.event.data["userId"]
    await ctx.step.run("send-welcome", lambda: print(f"  [step] welcome email to {user}"))
    completed = await ctx.step.wait_for_event(
        "wait-for-onboarding", event="app/onboarding.completed", timeout="3d", match="data.userId"
    )
    if completed is None:
        await ctx.step.run("send-nudge", lambda: print(f"  [step] nudge email to {user}"))
        return "nudged"
    await ctx.step.run("send-tips", lambda: print(f"  [step] tips email to {user}"))
    return "tips sent"


@app.function(trigger="refund/requested")
async def refund_approval(ctx: tarry.Context) -> dict[str, Any]:
    order = ctx.event.data["orderId"]
    handle = await ctx.step.resume_url("review-link", timeout="24h", payload={"orderId": order})

    def email_manager() -> str:
        outbox[order] = handle.url
        print(f"  [step] email to the manager: approve the refund of {order}? {handle.url}")
        return "sent"

    await ctx.step.run("email-manager", email_manager)
    decision = await ctx.step.wait_for_resume("wait-for-review", handle)
    if decision is None:
        return {"orderId": order, "refunded": False, "reason": "no answer within a day"}
    answer = decision["event"] or {}  # the link's query parameters, or the JSON body posted to it
    if "approved" in answer:  # the dashboard's Approve / Reject: {"approved": true} or {"approved": false}
        return {"orderId": order, "refunded": answer["approved"] is True}
    return {"orderId": order, "refunded": answer.get("approve", "yes") != "no"}  # the link: ?approve=no


async def started_run(event: tarry.Event) -> tarry.Run:
    [event_id] = await app.send(event)
    await app.idle()
    [run] = await app.runs_for_event(event_id)
    print(f"run {run.id} of {run.function_id} is {run.status.value}")
    return run


async def main() -> None:
    async with app:
        drip = await started_run(tarry.Event("app/account.created", {"userId": "ada"}))
        await asyncio.sleep(1)
        print("ada completes her onboarding")
        await app.send(tarry.Event("app/onboarding.completed", {"userId": "ada"}))
        print(f"  -> {(await app.wait_for_run(drip.id)).output}")

        refund = await started_run(tarry.Event("refund/requested", {"orderId": "o-1001"}))
        await asyncio.sleep(1)
        print("the manager opens the link and approves")
        token = outbox["o-1001"].rsplit("/", 1)[1]
        await app.resume(token, {"approve": "yes"})
        print(f"  -> {(await app.wait_for_run(refund.id)).output}")
    print(f"state kept in {app.database_url}")


if __name__ == "__main__":
    asyncio.run(main())
