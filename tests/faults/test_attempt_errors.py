"""Every failed attempt's error survives a `tarry worker` SIGKILLed between attempts, on both stores."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

import tarry
from tests.faults.conftest import Workers, client, effects, exited, until

pytestmark = pytest.mark.timeout(90)

# FAULT_KILL of faults_app: in the second attempt's body (the first attempt's error recorded), or just
# after the first attempt's failure committed (the run in its backoff)
KILLS = {"in-the-second-attempt": ("body:call:2", 4), "after-the-first-failure-commit": ("after-commit:call:1", 3)}


@pytest.mark.parametrize("kill", list(KILLS), ids=list(KILLS))
def test_every_attempts_error_survives_a_worker_killed_between_attempts(
    kill: str, fault_url: str, workers: Workers, tmp_path: Path
) -> None:
    point, bodies = KILLS[kill]
    doomed = workers(FAULT_KILL=point)

    async def scenario() -> tarry.Run:
        app = await client(fault_url)
        try:
            [event_id] = await app.send(tarry.Event("fault/flaky"))
            assert exited(doomed, 30) == -signal.SIGKILL
            workers(TARRY_WORKER_LEASE="500ms")  # the restart: takes over the dead worker's run

            async def finished() -> bool:
                runs = await app.runs_for_event(event_id)
                return bool(runs) and runs[0].status.finished

            await until(finished, 40, "the run to finish after the restart")
            [run] = await app.runs_for_event(event_id)
            return run
        finally:
            await app.close()

    run = asyncio.run(scenario())
    [step] = run.steps
    assert run.status == "completed" and run.output == "ok"
    assert step.attempts == 3 and step.error is None
    assert [(e["name"], e["message"]) for e in step.errors] == [
        ("RetryAfterError", "attempt 0 failed"),
        ("RetryAfterError", "attempt 1 failed"),
    ], "an attempt the kill interrupted recorded nothing; the others are all kept"
    assert all(", in call\n" in e["traceback"] for e in step.errors)
    assert effects(tmp_path)[(run.id, "call")] == bodies
