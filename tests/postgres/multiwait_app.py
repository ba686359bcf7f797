"""Runs that race for two events of their own (``duel/a`` and ``duel/b`` with their ``data.n``).

For each n, three runs: one waits for the first of the two in a ``wait_for_any`` and then for the
other in a ``wait_for_event``; one waits for both in a ``wait_for_all``; one collects two of them.
Shared by the racing tests: the test's own app and each sender process define the same functions.
"""

from __future__ import annotations

from typing import Any

import tarry

NAMES = ("duel/a", "duel/b")
STARTS = ("duel/start", "pair/start", "tally/start")


def duel(app: tarry.Tarry) -> None:
    @app.function(trigger="duel/start")
    async def duelling(ctx: tarry.Context) -> list[Any]:
        choice = await ctx.step.wait_for_any("duel", [
            tarry.Wait(event=NAMES[0], match="data.n"),
            tarry.Wait(event=NAMES[1], match="data.n"),
        ], timeout="1h")  # fmt: skip
        later = await ctx.step.wait_for_event("later", event=list(NAMES), match="data.n", timeout="1h")
        assert choice is not None
        return [choice[0], choice[1].id, None if later is None else later.id]

    @app.function(trigger="pair/start")
    async def pairing(ctx: tarry.Context) -> list[Any]:
        both = await ctx.step.wait_for_all("pair", [
            tarry.Wait(event=NAMES[0], match="data.n"),
            tarry.Wait(event=NAMES[1], match="data.n"),
        ], timeout="1h")  # fmt: skip
        return [None if e is None else e.id for e in both]

    @app.function(trigger="tally/start")
    async def tallying(ctx: tarry.Context) -> list[Any]:
        two = await ctx.step.collect_events("tally", event=list(NAMES), match="data.n", count=2, timeout="1h")
        return [e.id for e in two]


def starts(n: int) -> list[tarry.Event]:
    return [tarry.Event(name, {"n": n}) for name in STARTS]


def check(runs: list[tarry.Run], sent: dict[str, dict[int, str]]) -> list[int]:
    """Each run got what its step promises from its two racing events; the indexes of the wait_for_any winners."""
    winners = []
    for run in runs:
        assert run.status == "completed", (run.id, run.function_id, run.status, run.error)
        n = run.event.data["n"]
        mine = [sent[name][n] for name in NAMES]
        if run.function_id == "duelling":
            index, winner, later = run.output
            assert winner == mine[index], "the index names the condition the winning event matched"
            assert later == mine[1 - index], "the other event was not consumed: a later wait of the run got it"
            winners.append(index)
        elif run.function_id == "pairing":
            assert run.output == mine, "both conditions taken, the step completed once"
        else:
            assert sorted(run.output) == sorted(mine), "both events collected"
    return winners
