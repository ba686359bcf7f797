"""Cross-process pick-up on SQLite: how soon a ``tarry worker`` starts a run another process stored.

A ``tarry worker`` subprocess serves a SQLite file; this process sends events
one at a time with a ``worker=False`` client of the same app (as a web app
does) and measures send -> the run's first step (the step returns
``time.time_ns()`` in the worker). The gaps between sends are random, so a
poll's phase does not line up with them. Then the worker's idle CPU, % of one
core, from ``/proc/<pid>/stat`` while nothing is sent for ``idle_s`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import tarry
from benchmarks.common import fresh_url, percentiles, temp_folder

ROOT = Path(__file__).resolve().parents[1]
APP = "benchmarks/wake_app.py:app"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _samples(url: str, n: int) -> list[float]:
    from benchmarks.wake_app import app

    client = tarry.Tarry(app.id, database_url=url)
    client._registry = app._registry  # the same functions: it routes its events itself, as a web app would
    await client.start(worker=False)
    try:
        for _ in range(5):  # the worker is up and has run once
            [event_id] = await client.send(tarry.Event("bench/wake"))
            await _first_run(client, event_id)
        samples = []
        for _ in range(n):
            await asyncio.sleep(random.uniform(0.01, 0.51))  # any phase of the 0.5 s poll
            sent = time.time_ns()
            [event_id] = await client.send(tarry.Event("bench/wake"))
            run = await _first_run(client, event_id)
            samples.append((run.output - sent) / 1e6)
        return samples
    finally:
        await client.close()


async def _first_run(client: tarry.Tarry, event_id: str) -> tarry.Run:
    deadline = time.monotonic() + 30
    while True:
        runs = await client.runs_for_event(event_id)
        if runs:
            return await client.wait_for_run(runs[0].id, timeout=30)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no run started for event {event_id} within 30 s")
        await asyncio.sleep(0.01)


def run(n: int, idle_s: float, stat: bool = False) -> dict[str, Any]:
    folder = temp_folder()
    url = fresh_url(folder, "wake")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    # --stat: the watch's fallback where inotify is missing (a stat of the log every few ms)
    code = (
        "import tarry._store.watch as w; w.USE_INOTIFY = False; " if stat else ""
    ) + "from tarry._cli import main; main()"
    worker = subprocess.Popen([sys.executable, "-c", code, "worker", APP, "--database-url", url],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert worker.stdout is not None
        if not worker.stdout.readline():  # "Tarry worker for ...": its store is open and its loop running
            raise RuntimeError(f"the tarry worker exited ({worker.wait()}) before it started")
        samples = asyncio.run(_samples(url, n))
        time.sleep(1)
        before, began = cpu_seconds(worker.pid), time.monotonic()
        time.sleep(idle_s)
        idle = 100 * (cpu_seconds(worker.pid) - before) / (time.monotonic() - began)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    pick_up = {k: round(v, 2) for k, v in percentiles(samples).items()}
    print(f"  send -> first step, {n} runs: p50 {pick_up['p50']} ms, p90 {pick_up['p90']} ms, "
          f"p99 {pick_up['p99']} ms", flush=True)  # fmt: skip
    print(f"  the worker's CPU while idle ({idle_s:g} s): {idle:.2f} % of one core", flush=True)
    return {"workload": "wake-stat" if stat else "wake", "runs": n, "pick_up_ms": pick_up, "idle_s": idle_s,
            "idle_cpu_percent": round(idle, 2)}  # fmt: skip
