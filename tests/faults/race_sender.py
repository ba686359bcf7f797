"""One of several processes racing to resume the same waits: ``notify`` every key once, at a signal.

``python -m tests.faults.race_sender DB_URL RUNS SENDER BARRIER`` opens a client app with the
functions of ``faults_app``, waits for the file BARRIER, then notifies ``race-0`` … ``race-{RUNS-1}`` (odd senders in reverse)
and prints one JSON object: each key and the ids of the runs its notify resumed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import tarry
from tests.faults import faults_app


async def main(url: str, runs: int, sender: int, barrier: Path) -> None:
    app = tarry.Tarry("faults", database_url=url)
    app._registry = faults_app.app._registry  # routes its own events, in its own transactions
    await app.start(worker=False)
    try:
        print("ready", flush=True)
        deadline = time.monotonic() + 30
        while not barrier.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the barrier never appeared")
            await asyncio.sleep(0.001)
        order = range(runs) if sender % 2 == 0 else reversed(range(runs))  # racing alike and meeting halfway
        resumed = {f"race-{n}": await app.notify(f"race-{n}", {"sender": sender}) for n in order}
        print(json.dumps(resumed), flush=True)
    finally:
        await app.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])))
