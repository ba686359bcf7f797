"""A trial reminder: welcome a user, wait, then remind them — on the embedded SQLite default.

Run it with ``./scripts/dev``. It sends one event, shows the run sleeping,
then resuming and completing. Stop it half-way (Ctrl-C) and run it again:
the sleeping run is picked up where it was, and no finished step runs twice.
"""

from __future__ import annotations

import asyncio
import sys

import tarry

app = tarry.Tarry("trial")  # the store: TARRY_DATABASE_URL, else ./.tarry/tarry.db


@app.function(trigger="app/trial.started")
async def trial_reminder(ctx: tarry.Context) -> dict[str, str]:
    user = ctx.event.data["user"]
    await ctx.step.run("send-welcome", lambda: print(f"  [step] welcome email to {user}"))
    await ctx.step.sleep("wait-before-reminder", "3s")  # in a real app: "3d"
    await ctx.step.run("send-reminder", lambda: print(f"  [step] reminder email to {user}"))
    return {"user": user, "status": "reminded"}


async def main() -> None:
    async with app:
        pending = [r for r in await app.list_runs(function_id="trial-reminder") if not r.status.finished]
        if pending:
            print(f"resuming {len(pending)} run(s) left from last time")
            runs = pending
        else:
            [event_id] = await app.send(tarry.Event("app/trial.started", {"user": "ada@example.com"}))
            print(f"sent event {event_id}")
            await app.idle()
            runs = await app.runs_for_event(event_id)
        for run in runs:
            current = await app.get_run(run.id)
            assert current is not None
            print(f"run {run.id} is {current.status.value}", end="")
            print(f" (steps so far: {', '.join(s.id for s in current.steps)})" if current.steps else "")
            done = await app.wait_for_run(run.id, timeout=60)
            print(f"run {run.id} is {done.status.value}: {done.output}")
    print(f"state kept in {app.database_url}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
