"""What the console reads about a run beyond its own record: the child run of each ``invoke`` step and
the reruns made from it. Reads only, through the store's queries; nothing here writes or decides.
"""

from __future__ import annotations

from tarry import _serde
from tarry._model import Run
from tarry._store.base import RunQuery, Store

#: the reruns a run's view lists, newest first
RERUNS_SHOWN = 20


async def child_runs(store: Store, run: Run) -> dict[str, str]:
    """The id of the run each ``invoke`` step of ``run`` started, by step id (steps whose child is not
    known are left out). A finished invoke's output is its child's ``tarry/function.*`` event, which
    names the child; one still waiting is found through its wait, keyed by the id of the
    ``tarry/function.invoked`` event it sent, whose first run is the child."""
    found: dict[str, str] = {}
    waiting: set[str] = set()
    for step in run.steps:
        if step.kind != "invoke":
            continue
        data = step.output.get("data") if isinstance(step.output, dict) else None
        child = data.get("run_id") if isinstance(data, dict) else None
        if isinstance(child, str):
            found[step.id] = child
        else:
            waiting.add(step.id)
    if not waiting:
        return found
    for wait in await store.list_waits(run.id, 1000):
        if wait.kind != "invoke" or wait.step_id not in waiting:
            continue
        event_id = _invoked_event(wait.match_key)
        if event_id is None:
            continue
        runs, _ = await store.query_runs(RunQuery(event_id=event_id, oldest_first=True), 1)
        if runs:
            found[wait.step_id] = runs[0].id
    return found


def _invoked_event(match_key: str) -> str | None:
    """The event id an invoke wait's key holds (``["<id>"]``, its one term), or None."""
    try:
        terms = _serde.loads(match_key)
    except ValueError:
        return None
    return terms[0] if isinstance(terms, list) and len(terms) == 1 and isinstance(terms[0], str) else None


async def reruns(store: Store, run_id: str) -> list[str]:
    """The ids of the runs made again from ``run_id``, newest first (at most ``RERUNS_SHOWN``)."""
    runs, _ = await store.query_runs(RunQuery(rerun_of=run_id), RERUNS_SHOWN)
    return [r.id for r in runs]
