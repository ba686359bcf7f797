"""Bulk actions (API §10): cancel or rerun every run a filter selects, a page at a time.

The runs are read with the one query every list of runs uses (``Store.query_runs``), oldest first, and
each page is acted on in a transaction of its own: no transaction grows with the selection, and the
worker's own transactions go between the pages. The selection is bounded at the call's start (the
newest run then), so the runs made meanwhile — the reruns themselves too — are never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tarry._clock import to_ms
from tarry._filters import UNFINISHED, run_query
from tarry._flow import Filter, compile_filter
from tarry._model import Run, RunStatus
from tarry._store.base import Cancelled, RunQuery

if TYPE_CHECKING:
    from tarry._engine.engine import Engine

#: runs read, and acted on in one transaction, at a time
PAGE = 200
#: the message of a run that a bulk cancel cancelled
CANCEL_REASON = "cancelled by cancel_runs"
#: what ``rerun_runs`` may select by
RERUN_STATUSES = tuple(s.value for s in RunStatus if s.finished)


@dataclass(frozen=True)
class Selection:
    """Which runs a bulk action takes: a query of the run list, and a filter on each one's trigger."""

    query: RunQuery
    if_exp: Filter | None = None

    def takes(self, run: Run) -> bool:
        """Whether ``if_exp`` holds for the run's trigger (one that fails to evaluate does not)."""
        return self.if_exp is None or self.if_exp.holds(run.event.to_json())


def select(action: str, *, function_id: object, if_exp: object, created_after: object, created_before: object,
           status: str | None = None) -> Selection:  # fmt: skip
    """The selection of these filters, each checked (``ValueError`` naming the field, ``ExpressionError``
    for ``if_exp``); at least one of them must be given. Runs of ``status`` (checked by ``finished_status``),
    or without one, every unfinished run."""
    if function_id is None and if_exp is None and created_after is None and created_before is None:
        raise ValueError(f"{action} needs at least one filter: function_id, if_exp, created_after or created_before "
                         "(to take every run, pass created_before=datetime.now(UTC))")  # fmt: skip
    query = run_query(function_id=function_id, status=list(UNFINISHED) if status is None else status,
                      created_after=created_after, created_before=created_before, oldest_first=True)  # fmt: skip
    return Selection(query, None if if_exp is None else compile_filter(if_exp, "if_exp"))


def finished_status(status: object) -> str:
    """The status ``rerun_runs`` selects: one of a finished run's (``ValueError`` for anything else)."""
    if not isinstance(status, str) or status not in RERUN_STATUSES:
        raise ValueError(f"invalid status {status!r}: one of {', '.join(RERUN_STATUSES)} (a finished run's status)")
    return str(RunStatus(status).value)


async def cancel_runs(engine: Engine, selection: Selection) -> int:
    """Cancel every unfinished run selected; how many (a running one asked to stop at its next step counts)."""
    count = 0
    async for page in _pages(engine, selection):
        outcomes = await engine.store.cancel_runs([r.id for r in page], engine.clock.now_ms(), CANCEL_REASON)
        for run, outcome in zip(page, outcomes, strict=True):
            if outcome == Cancelled.REQUESTED:
                engine.cancelling.add(run.id)
            count += outcome != Cancelled.ENDED
        engine.wake()
    return count


async def rerun_runs(engine: Engine, selection: Selection) -> list[str]:
    """Rerun every finished run selected, oldest first; the new runs' ids in that order. A run of a
    function this app does not register is left out (it cannot be rerun here)."""
    new_ids: list[str] = []
    async for page in _pages(engine, selection):
        ids = _rerunnable(engine, page)
        if ids:
            new_ids.extend(await engine.store.rerun_runs(ids, engine.clock.now_ms()))
            engine.wake()
    return new_ids


def _rerunnable(engine: Engine, page: list[Run]) -> list[str]:
    return [r.id for r in page if engine.knows(r.function_id)]


async def matching(engine: Engine, selection: Selection, action: str) -> int:
    """How many runs ``action`` (``"cancel"`` or ``"rerun"``) would take now, changing nothing: the
    pages the action reads, each counted as the action would take it (a rerun leaves out the runs of
    a function this app does not register)."""
    count = 0
    async for page in _pages(engine, selection):
        count += len(page) if action == "cancel" else len(_rerunnable(engine, page))
    return count


async def _pages(engine: Engine, selection: Selection) -> AsyncIterator[list[Run]]:
    """The selected runs that existed when this began, a page at a time (skipping pages none of whose
    runs the filter takes), oldest first."""
    newest, _ = await engine.store.query_runs(RunQuery(), 1)
    if not newest:
        return
    bound = (to_ms(newest[0].created_at), newest[0].id)
    query = selection.query
    while True:
        runs, after = await engine.store.query_runs(query, PAGE)
        past = [r for r in runs if (to_ms(r.created_at), r.id) > bound]
        page = [r for r in runs if (to_ms(r.created_at), r.id) <= bound and selection.takes(r)]
        if page:
            yield page
        if after is None or past:
            return
        query = replace(query, after=after)
        await asyncio.sleep(0)  # one loop turn for the worker and the other callers between two pages
