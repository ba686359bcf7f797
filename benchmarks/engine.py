"""The engine's hot paths on one store, in-process worker: ingest, park, resume, latency, memory.

Each workload runs on a fresh database. Times are wall-clock on the machine's
real clock (no VirtualClock): what a user of the library would see.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path
from typing import Any

import tarry
from benchmarks.common import percentiles

DONE: dict[int, float] = {}
PROBES: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _done(n: int) -> None:
    """The resumed run's next step: note when it ran, and tell a latency probe waiting for it."""
    DONE[n] = time.perf_counter()
    probe = PROBES.pop(n, None)
    if probe is not None:
        probe[0].call_soon_threadsafe(probe[1].set_result, None)


def _app(url: str) -> tarry.Tarry:
    app = tarry.Tarry("bench", database_url=url, concurrency=256)

    @app.function(trigger="bench/start", retries=0)
    async def waiter(ctx: tarry.Context) -> Any:
        n = ctx.event.data["n"]
        got = await ctx.step.wait_for_event("w", event="bench/go", match="data.n", timeout="1d")
        await ctx.step.run("done", _done, n)
        return None if got is None else n

    return app


async def _until_status(app: tarry.Tarry, status: str, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while (await app.engine.store.counts()).runs.get(status, 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} runs not {status} within {timeout} s")
        await asyncio.sleep(0.02)


async def ingest(url: str, n: int) -> dict[str, float]:
    app = _app(url)
    await app.start(worker=False)
    try:
        began = time.perf_counter()
        for i in range(n):
            await app.send(tarry.Event("bench/other", {"i": i}))
        single = n / (time.perf_counter() - began)
        began = time.perf_counter()
        for first in range(0, n, 100):
            await app.send([tarry.Event("bench/other", {"i": i}) for i in range(first, first + 100)])
        batched = n / (time.perf_counter() - began)
    finally:
        await app.close()
    return {"ingest_single_per_s": single, "ingest_batch100_per_s": batched}


async def park_and_resume(url: str, n: int, db_file: Path | None) -> dict[str, float]:
    app = _app(url)
    gc.collect()
    idle_rss = _rss_bytes()
    size_before = db_file.stat().st_size if db_file and db_file.exists() else 0
    async with app:
        began = time.perf_counter()
        for first in range(0, n, 100):
            await app.send([tarry.Event("bench/start", {"n": i}) for i in range(first, min(n, first + 100))])
        await _until_status(app, "waiting", n)
        park = n / (time.perf_counter() - began)
        gc.collect()
        waiting_rss = _rss_bytes()
        size = (db_file.stat().st_size + _wal(db_file) - size_before) if db_file else 0
        DONE.clear()
        began = time.perf_counter()
        for first in range(0, n, 100):
            await app.send([tarry.Event("bench/go", {"n": i}) for i in range(first, min(n, first + 100))])
        await _until_status(app, "completed", n)
        resume = n / (time.perf_counter() - began)
    return {"park_per_s": park, "resume_per_s": resume, "rss_idle_mib": idle_rss / 2**20,
            "rss_waiting_mib": waiting_rss / 2**20, "disk_bytes_per_waiting_run": size / n}  # fmt: skip


def _wal(db_file: Path) -> int:
    wal = db_file.with_name(db_file.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def latency(url: str, n: int) -> dict[str, float]:
    app = _app(url)
    async with app:
        await app.send([tarry.Event("bench/start", {"n": i}) for i in range(n)])
        await _until_status(app, "waiting", n)
        DONE.clear()
        samples = []
        for i in range(n):
            loop = asyncio.get_running_loop()
            done = PROBES[i] = (loop, loop.create_future())
            sent = time.perf_counter()
            await app.send(tarry.Event("bench/go", {"n": i}))
            await done[1]
            samples.append((DONE[i] - sent) * 1000)
    p = percentiles(samples)
    return {"latency_p50_ms": p["p50"], "latency_p90_ms": p["p90"], "latency_p99_ms": p["p99"]}


def run(url_for: Any, n: int) -> dict[str, Any]:
    result: dict[str, Any] = {"workload": "engine", "runs": n}
    url, db_file = url_for("ingest")
    result.update(asyncio.run(ingest(url, 5000)))
    url, db_file = url_for("park")
    result.update(asyncio.run(park_and_resume(url, n, db_file)))
    url, db_file = url_for("latency")
    result.update(asyncio.run(latency(url, 200)))
    result = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()}
    for key, value in result.items():
        print(f"  {key}: {value}", flush=True)
    return result


def sqlite(folder: Path) -> Any:
    def url_for(name: str) -> tuple[str, Path]:
        path = folder / f"engine-{name}-{os.getpid()}.db"
        return "sqlite:///" + str(path), path

    return url_for
