"""Two processes send, at once, the two events that match the two conditions of each run's wait_for_any."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tarry
from tests.postgres.conftest import ROOT
from tests.postgres.multiwait_app import NAMES, check, duel

RUNS = 150
pytestmark = pytest.mark.timeout(60)


def test_two_processes_racing_for_one_wait_for_any_one_event_wins_the_other_stays(pg_url: str, tmp_path: Path) -> None:
    barrier = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    senders = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.postgres.multiwait_sender", pg_url, str(RUNS), name, str(barrier)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in NAMES
    ]

    async def scenario() -> list[tarry.Run]:
        app = tarry.Tarry("duel", database_url=pg_url)  # the real clock, as the senders'
        duel(app)
        async with app:
            await app.send([tarry.Event("duel/start", {"n": n}) for n in range(RUNS)])
            deadline = time.monotonic() + 20
            while len(await app.list_runs(status="waiting", limit=1000)) < RUNS:
                assert time.monotonic() < deadline, "every run should be waiting"
                await asyncio.sleep(0.02)
            for sender in senders:  # each has opened its app: they start at one moment
                assert sender.stdout is not None and sender.stdout.readline().strip() == "ready"
            barrier.touch()
            runs = await app.list_runs(function_id="duelling", limit=1000)
            return [await app.wait_for_run(r.id, timeout=20) for r in runs]

    try:
        runs = asyncio.run(scenario())
        reports = [json.loads(sender.communicate(timeout=30)[0]) for sender in senders]
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
    assert all(sender.returncode == 0 for sender in senders)
    sent = {
        name: {int(n): event_id for n, event_id in report.items()} for name, report in zip(NAMES, reports, strict=True)
    }
    assert len(runs) == RUNS
    winners = check(runs, sent)
    print(f"wait_for_any won by {NAMES[0]}: {winners.count(0)}, by {NAMES[1]}: {winners.count(1)}")
