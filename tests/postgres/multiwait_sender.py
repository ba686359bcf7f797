"""One of two processes racing events at the same steps: ``send_all`` sends NAME for every run.

Run in a spawned process (``multiprocessing``): it opens a client app with the functions of
``multiwait_app`` and sends ``Event(name, {"n": n})`` for n = 0 … runs-1, one at a time, each only
once every process has reached the shared barrier (so both events of a run are sent at one moment);
then puts ``(name, {n: event id})`` on ``results``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import tarry
from tests.postgres.multiwait_app import duel


def send_all(url: str, runs: int, name: str, barrier: Any, results: Any) -> None:
    asyncio.run(_send_all(url, runs, name, barrier, results))


async def _send_all(url: str, runs: int, name: str, barrier: Any, results: Any) -> None:
    app = tarry.Tarry("duel", database_url=url)
    duel(app)
    await app.start(worker=False)
    try:
        sent = {}
        for n in range(runs):
            barrier.wait()  # blocks this client's loop a moment: nothing of it needs to run meanwhile
            [sent[n]] = await app.send(tarry.Event(name, {"n": n}))
        results.put((name, sent))
    finally:
        await app.close()
