"""Several processes send, at once, the event that resumes the same wait: one resume per wait."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tarry
from tests.faults.conftest import Workers, client, effects, until
from tests.postgres.conftest import ROOT

RUNS = 60
SENDERS = 4
pytestmark = pytest.mark.timeout(90)


def test_senders_racing_for_one_wait_resume_it_once(fault_url: str, workers: Workers, tmp_path: Path) -> None:
    workers()
    barrier = tmp_path / "go"
    command = [sys.executable, "-m", "tests.faults.race_sender", fault_url, str(RUNS)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    senders = [
        subprocess.Popen([*command, str(i), str(barrier)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for i in range(SENDERS)
    ]

    async def scenario() -> list[tarry.Run]:
        app = await client(fault_url)
        try:
            await app.send([tarry.Event("race/start", {"n": n}) for n in range(RUNS)])

            async def all_waiting() -> bool:
                return len(await app.list_runs(status="waiting", limit=1000)) == RUNS

            await until(all_waiting, 30, "every run to wait")
            for sender in senders:  # each has opened its app: they start at one moment
                assert sender.stdout is not None and sender.stdout.readline().strip() == "ready"
            barrier.touch()

            async def all_done() -> bool:
                return len(await app.list_runs(status="completed", limit=1000)) == RUNS

            await until(all_done, 30, "every run to complete")
            return [await app.wait_for_run(r.id, timeout=5) for r in await app.list_runs(limit=1000)]
        finally:
            await app.close()

    runs = asyncio.run(scenario())
    reports = [json.loads(sender.communicate(timeout=30)[0]) for sender in senders]
    assert all(sender.returncode == 0 for sender in senders)
    by_run = {run.id: run for run in runs}
    resumers: dict[str, list[int]] = {run_id: [] for run_id in by_run}
    for index, report in enumerate(reports):
        for run_ids in report.values():
            for run_id in run_ids:
                resumers[run_id].append(index)
    assert all(len(who) == 1 for who in resumers.values()), f"a wait resumed more than once: {resumers}"
    assert {run_id: by_run[run_id].output for run_id in by_run} == {r: who[0] for r, who in resumers.items()}
    done = effects(tmp_path)
    assert all(done[run_id, "after"] == 1 for run_id in by_run), "the step after each wait ran once"
    assert len({who[0] for who in resumers.values()}) > 1, "the senders really raced"
