"""A `tarry worker` SIGKILLed at chosen points, then restarted: nothing lost, nothing recorded runs again."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

import tarry
from tests.faults.conftest import Workers, client, effects, exited, until

RUNS = 12
pytestmark = pytest.mark.timeout(90)

# (point, step, nth): the nth time any run's `step` reaches `point`, the worker kills itself. A
# step killed before its record committed runs again (at least once); after, never again.
KILLS = {
    "in-body": ("body", "two", 3),
    "before-step-commit": ("before-commit", "two", 3),
    "after-step-commit": ("after-commit", "two", 3),
    "before-finish-commit": ("before-commit", "#finish", 3),
    "after-finish-commit": ("after-commit", "#finish", 3),
    "before-first-step-commit": ("before-commit", "one", 5),
    "before-park-commit": ("before-commit", "#park", 7),
    "after-park-commit": ("after-commit", "#park", 7),
}


async def completed_steps(app: tarry.Tarry) -> set[tuple[str, str]]:
    """(run id, step id) of every step recorded as completed."""
    recorded = set()
    for listed in await app.list_runs(limit=1000):
        run = await app.get_run(listed.id)
        assert run is not None
        recorded |= {(run.id, s.id) for s in run.steps if s.status == "completed"}
    return recorded


@pytest.mark.parametrize("kill", list(KILLS), ids=list(KILLS))
def test_a_worker_killed_at_a_chosen_point_loses_nothing_after_a_restart(
    kill: str, fault_url: str, workers: Workers, tmp_path: Path
) -> None:
    point, step, nth = KILLS[kill]
    doomed = workers(FAULT_KILL=f"{point}:{step}:{nth}")

    async def scenario() -> tuple[set[tuple[str, str]], Counter[tuple[str, str]], list[tarry.Run]]:
        app = await client(fault_url)
        try:
            sent = []
            for n in range(RUNS):  # each run's go event follows its start: the wait looks back at it
                sent += await app.send(tarry.Event("fault/start", {"n": n}))
                sent += await app.send(tarry.Event("fault/go", {"n": n}))
            assert exited(doomed, 30) == -signal.SIGKILL
            recorded = await completed_steps(app)
            before = effects(tmp_path)
            workers(TARRY_WORKER_LEASE="500ms")  # the restart: takes over the dead worker's runs

            async def all_done() -> bool:
                return len(await app.list_runs(status="completed", limit=1000)) == RUNS

            await until(all_done, 40, "every run to finish after the restart")
            runs = [await app.wait_for_run(r.id, timeout=5) for r in await app.list_runs(limit=1000)]
            for event_id in sent:
                assert await app.engine.store.get_event(event_id) is not None, f"accepted event {event_id} is lost"
            resumed = [run for event_id in sent[1::2] for run in await app.engine.store.runs_resumed_by_event(event_id)]
            assert sorted(r.id for r in resumed) == sorted(r.id for r in runs), "each wait resumed once"
            return recorded, before, runs
        finally:
            await app.close()

    recorded, before, runs = asyncio.run(scenario())
    assert len(runs) == RUNS and {r.status for r in runs} == {"completed"}
    assert sorted(r.output for r in runs) == list(range(RUNS)), "each run was resumed by its own event"
    done = effects(tmp_path)
    [victim] = [run_id for (run_id, name) in done if name == "killed:" + step]
    for run in runs:
        assert [s.id for s in run.steps] == ["one", "nap", "w", "two"]
        for name in ("one", "two"):
            ran = done[run.id, name]
            if (run.id, name) in recorded:  # recorded before the kill: never again
                assert ran == 1, f"recorded step {name} of run {run.id} ran again ({ran} times)"
            else:  # interrupted (its effect may be done) or not yet begun: it ran to its record once after
                assert ran - before[run.id, name] == 1, f"step {name} of run {run.id} ran {ran} times"
    interrupted = point in ("body", "before-commit") and not step.startswith("#")
    if not step.startswith("#"):
        assert ((victim, step) in recorded) is not interrupted
        assert done[victim, step] == (2 if interrupted else 1), "the step killed before its record ran again"
