"""Runs that wait for the first of two events of their own (``duel/a``, ``duel/b``), then for the other one.

Shared by the racing tests: the test's own app and each sender process define the same function.
"""

from __future__ import annotations

from typing import Any

import tarry

NAMES = ("duel/a", "duel/b")


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


def check(runs: list[tarry.Run], sent: dict[str, dict[int, str]]) -> list[int]:
    """Each run's wait_for_any got exactly one of its two events and its later wait the other; the winners' indexes."""
    winners = []
    for run in runs:
        assert run.status == "completed", (run.id, run.status, run.error)
        n = run.event.data["n"]
        index, winner, later = run.output
        assert winner == sent[NAMES[index]][n], "the index names the condition the winning event matched"
        assert later == sent[NAMES[1 - index]][n], "the other event was not consumed: a later wait of the run got it"
        winners.append(index)
    return winners
