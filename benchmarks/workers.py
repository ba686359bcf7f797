"""Scale-out on PostgreSQL: the same resume workload with 1, 2 and 4 `tarry worker` processes.

N runs each wait for their own event (``match="data.n"``); all N events are
then sent by four concurrent senders. Figures: runs parked per second, runs
resumed and completed per second, and the database server's CPU and WAL per
resumed run (``benchmarks.pgcost``), by number of worker processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

import tarry
from benchmarks.pgcost import Cost

ROOT = Path(__file__).resolve().parents[1]
APP = "tests/postgres/workers_app.py:app"


def _database(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    return url


def _count(url: str, status: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM runs WHERE status = %s", (status,)).fetchone()[0])  # type: ignore[index]


async def _until(url: str, status: str, n: int) -> None:
    while _count(url, status) < n:
        await asyncio.sleep(0.05)


async def _measure(url: str, n: int) -> tuple[float, float, dict[str, Any]]:
    from tests.postgres import workers_app

    senders = [tarry.Tarry("bench", database_url=url) for _ in range(4)]
    for sender in senders:
        sender._registry = workers_app.app._registry
        await sender.start(worker=False)
    began = time.perf_counter()
    await asyncio.gather(
        *(s.send([tarry.Event("bench/start", {"n": i}) for i in range(k, n, 4)]) for k, s in enumerate(senders))
    )
    await _until(url, "waiting", n)
    parked = time.perf_counter() - began

    async def send_all(sender: tarry.Tarry, part: range) -> None:
        for i in part:
            await sender.send(tarry.Event("bench/go", {"n": i}))

    cost = Cost(url)
    await asyncio.to_thread(cost.start)
    began = time.perf_counter()
    await asyncio.gather(*(send_all(s, range(k, n, 4)) for k, s in enumerate(senders)))
    await _until(url, "completed", n)
    resumed = time.perf_counter() - began
    spent = await asyncio.to_thread(cost.stop, n)
    for sender in senders:
        await sender.close()
    return n / parked, n / resumed, spent


def run(admin: str, counts: list[int], n: int) -> dict[str, Any]:
    rows = []
    for workers in counts:
        url = _database(admin, f"tarry_bench_workers_{workers}")

        async def migrate(url: str = url) -> None:
            app = tarry.Tarry("bench", database_url=url)
            await app.start(worker=False)
            await app.close()

        asyncio.run(migrate())
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE effects (run_id TEXT, step TEXT, n INTEGER, pid INTEGER)")
        env = {**os.environ, "TARRY_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        processes = [subprocess.Popen([sys.executable, "-m", "tarry._cli_main", "worker", APP], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL) for _ in range(workers)]  # fmt: skip
        time.sleep(1.5)
        try:
            park, resume, spent = asyncio.run(_measure(url, n))
        finally:
            for p in processes:
                p.send_signal(signal.SIGTERM)
            for p in processes:
                p.wait(20)
        cpu = spent["server_cpu_us_per_run"]
        rows.append(
            {
                "workers": workers,
                "runs": n,
                "park_per_s": round(park),
                "resume_per_s": round(resume),
                "server_cpu_us_per_resume": round(cpu),
                "wal_bytes_per_resume": round(spent["wal_bytes_per_run"]),
            }
        )
        print(
            f"  {workers} worker(s): parked {park:,.0f}/s, resumed and completed {resume:,.0f}/s, "
            f"server CPU {cpu:,.0f} µs per resume",
            flush=True,
        )
    return {"workload": "workers-postgresql", "rows": rows}
