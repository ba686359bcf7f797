"""One of two processes racing events at the same wait_for_any steps: send NAME for every run, at a signal.

``python -m tests.postgres.multiwait_sender DB_URL RUNS NAME BARRIER`` opens a client app with the
functions of ``multiwait_app``, prints ``ready``, waits for the file BARRIER, then sends
``Event(NAME, {"n": n})`` for n = 0 … RUNS-1, one at a time, and prints one JSON object: n -> event id.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import tarry
from tests.postgres.multiwait_app import duel


async def main(url: str, runs: int, name: str, barrier: Path) -> None:
    app = tarry.Tarry("duel", database_url=url)
    duel(app)
    await app.start(worker=False)
    try:
        print("ready", flush=True)
        deadline = time.monotonic() + 30
        while not barrier.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the barrier never appeared")
            await asyncio.sleep(0.001)
        sent = {}
        for n in range(runs):
            [sent[n]] = await app.send(tarry.Event(name, {"n": n}))
        print(json.dumps(sent), flush=True)
    finally:
        await app.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
