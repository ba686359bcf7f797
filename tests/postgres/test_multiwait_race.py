"""Two processes send, at once, the two events that each run of wait_for_any, wait_for_all or collect_events races for."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

import tarry
from tests.postgres.multiwait_app import NAMES, STARTS, check, duel, starts
from tests.postgres.multiwait_sender import send_all

RUNS = 100
pytestmark = pytest.mark.timeout(60)


def test_two_processes_racing_their_events_at_each_kind_of_step(pg_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(len(NAMES), timeout=30), spawn.Queue()
    senders = [spawn.Process(target=send_all, args=(pg_url, RUNS, name, barrier, results)) for name in NAMES]

    async def scenario() -> tuple[list[tarry.Run], dict[str, dict[int, str]]]:
        app = tarry.Tarry("duel", database_url=pg_url)  # the real clock, as the senders'
        duel(app)
        async with app:
            await app.send([start for n in range(RUNS) for start in starts(n)])
            deadline = time.monotonic() + 20
            while len(await app.list_runs(status="waiting", limit=1000)) < RUNS * len(STARTS):
                assert time.monotonic() < deadline, "every run should be waiting"
                await asyncio.sleep(0.02)
            for sender in senders:
                sender.start()
            loop = asyncio.get_running_loop()
            sent = dict([await loop.run_in_executor(None, results.get, True, 30) for _ in senders])
            runs = await app.list_runs(limit=1000)
            return [await app.wait_for_run(r.id, timeout=20) for r in runs], sent

    try:
        runs, sent = asyncio.run(scenario())
    finally:
        for sender in senders:
            sender.join(10)
            if sender.is_alive():
                sender.kill()
                sender.join()
    assert all(sender.exitcode == 0 for sender in senders)
    assert len(runs) == RUNS * len(STARTS)
    winners = check(runs, sent)
    print(f"wait_for_any won by {NAMES[0]}: {winners.count(0)}, by {NAMES[1]}: {winners.count(1)}")
    assert 0 < winners.count(0) < len(winners), "the senders really raced: each won some"
