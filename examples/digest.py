"""A weekly digest: every Monday at 9 in Berlin, each subscriber with something new gets one email.

A ``tarry.Cron`` trigger starts ``weekly_digest`` at each tick, and a ``digest/requested`` event starts it
on demand; the week it covers ends at its event's ``ts`` (the tick). Every email is a step of its own, so a
digest cut short by a crash goes on where it was and sends no one the same email twice; ``singleton``
skips a tick while the last digest still runs. The mailer and the activity feed below are stand-ins that
keep what they were asked.

Run it with ``.venv/bin/python examples/digest.py``: four weeks pass on a virtual clock in a moment (in
memory, or on TARRY_DATABASE_URL). Serve it with ``tarry dev examples/digest.py:app``, and the digest goes
out on Mondays at 9, or when you send ``digest/requested``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import tarry
from tarry.testing import VirtualClock

#: Mondays at 9, Berlin time: 08:00 UTC in winter, 07:00 in summer
DIGEST = tarry.Cron("0 9 * * MON", timezone="Europe/Berlin")
WEEK = timedelta(days=7)


class FakeActivity:
    """Stands in for the app's database: who subscribed, and what happened to each of them (ISO times)."""

    def __init__(self) -> None:
        start = datetime(2026, 1, 5, 12, tzinfo=UTC)
        self.items: list[tuple[str, str, str]] = []
        for day in range(28):
            at = (start + timedelta(days=day)).isoformat()
            self.items.append(("ana@example.com", at, f"comment #{day} on your post"))
            if day // 7 in (0, 2):  # Ben is active in the first and third weeks only
                self.items.append(("ben@example.com", at, f"like #{day}"))

    def subscribers(self) -> list[str]:
        return ["ana@example.com", "ben@example.com"]

    def between(self, user: str, since: str, until: str) -> list[str]:
        return [text for who, at, text in self.items if who == user and since <= at < until]


class FakeMailer:
    """Stands in for the email service: keeps every message it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (to, subject)

    def send(self, to: str, subject: str, body: str) -> str:
        self.sent.append((to, subject))
        return f"msg-{len(self.sent)}"


activity = FakeActivity()
mailer = FakeMailer()


def build(*, clock: VirtualClock | None = None, database_url: str | None = None) -> tarry.Tarry:
    """The app, on the system clock (``app`` below) or on a virtual one (``main``)."""
    app = tarry.Tarry("digest", clock=clock, database_url=database_url)

    @app.function(trigger=[DIGEST, "digest/requested"], singleton=tarry.Singleton(mode="skip"))
    async def weekly_digest(ctx: tarry.Context) -> dict[str, Any]:
        assert ctx.event.ts is not None  # a received event always has its ts: the tick, or when it was sent
        until = datetime.fromtimestamp(ctx.event.ts / 1000, UTC)
        since, until_text = (until - WEEK).isoformat(), until.isoformat()
        sent = []
        for user in await ctx.step.run("subscribers", activity.subscribers):
            items = await ctx.step.run(f"activity-{user}", activity.between, user, since, until_text)
            if items:
                subject = f"Your week to {until:%d %b}: {len(items)} new"
                await ctx.step.run(f"email-{user}", mailer.send, user, subject, "\n".join(items))
                sent.append(user)
        return {"week_ending": until_text, "sent": sent}

    return app


app = build()


async def main(database_url: str | None = None) -> list[dict[str, Any]]:
    """Four weeks of digests on a virtual clock; returns what each run sent, oldest first."""
    clock = VirtualClock(start=datetime(2026, 1, 5, 10, tzinfo=UTC))  # a Monday, after this week's digest
    demo = build(clock=clock, database_url=database_url or os.environ.get("TARRY_DATABASE_URL", "sqlite:///:memory:"))
    async with demo:
        await clock.advance("4w")
        runs = await demo.list_runs(function_id="weekly-digest")
        digests = sorted((run.output for run in runs), key=lambda output: output["week_ending"])
    for digest in digests:
        print(f"week ending {digest['week_ending'][:10]}: sent to {', '.join(digest['sent']) or 'nobody'}")
    print(f"{len(mailer.sent)} emails in {len(digests)} digests")
    return digests


if __name__ == "__main__":
    asyncio.run(main())
