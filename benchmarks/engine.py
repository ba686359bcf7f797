"""The engine's hot paths on one store, in-process worker: ingest, park, resume, latency, memory.

Each workload runs on a fresh database (``Backend.fresh``). Times are
wall-clock on the machine's real clock (no VirtualClock): what a user of the
library would see. The client sending events is the same process as the
worker, as in an app that embeds Tarry.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import tarry
from benchmarks.common import Backend, percentiles, rss_mib

DONE: dict[int, float] = {}
PROBES: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}


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


async def until_status(app: tarry.Tarry, status: str, n: int, timeout: float = 3600) -> None:
    """Wait until ``n`` runs have ``status``. Counting scans every run, so it is done at most about
    one tenth of the time (at least every 20 ms): the count must not slow what it measures."""
    deadline = time.monotonic() + timeout
    while True:
        began = time.monotonic()
        if (await app.engine.store.counts()).runs.get(status, 0) >= n:
            return
        if began > deadline:
            raise TimeoutError(f"{n} runs not {status} within {timeout} s")
        await asyncio.sleep(max(0.02, 9 * (time.monotonic() - began)))


async def _send_all(app: tarry.Tarry, name: str, n: int) -> None:
    for first in range(0, n, 100):
        await app.send([tarry.Event(name, {"n": i}) for i in range(first, min(n, first + 100))])


async def ingest(url: str, n: int) -> dict[str, float]:
    """Events accepted by ``app.send`` per second, one at a time and in batches of 100."""
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


async def park_and_resume(url: str, n: int) -> dict[str, float]:
    """N runs started and parked in ``wait_for_event``; then N events, each resuming one run."""
    app = _app(url)
    async with app:
        began = time.perf_counter()
        await _send_all(app, "bench/start", n)
        await until_status(app, "waiting", n)
        park = n / (time.perf_counter() - began)
        DONE.clear()
        began = time.perf_counter()
        await _send_all(app, "bench/go", n)
        await until_status(app, "completed", n)
        resume = n / (time.perf_counter() - began)
    return {"park_per_s": park, "resume_per_s": resume}


async def database_cost(url: str, n: int) -> dict[str, Any]:
    """Park and resume of ``n`` runs as in ``park_and_resume``, counting what each costs the PostgreSQL
    server per run (``benchmarks.pgcost``): a run of its own, since counting slows the client a little."""
    from benchmarks.pgcost import Cost, counting, until

    cost = Cost(url)
    app = _app(url)
    figures: dict[str, Any] = {}
    with counting():
        async with app:
            await asyncio.to_thread(cost.start)
            waited = asyncio.create_task(asyncio.to_thread(until, url, "waiting", n))
            await _send_all(app, "bench/start", n)
            await waited
            figures["park"] = await asyncio.to_thread(cost.stop, n)
            await asyncio.to_thread(cost.start)
            waited = asyncio.create_task(asyncio.to_thread(until, url, "completed", n))
            await _send_all(app, "bench/go", n)
            await waited
            figures["resume"] = await asyncio.to_thread(cost.stop, n)
    return figures


async def latency(url: str, n: int) -> dict[str, float]:
    """With ``n`` runs waiting, one event at a time: sent -> the resumed run's next step done."""
    app = _app(url)
    async with app:
        await _send_all(app, "bench/start", n)
        await until_status(app, "waiting", n)
        DONE.clear()
        samples = []
        loop = asyncio.get_running_loop()
        for i in range(n):
            done = PROBES[i] = (loop, loop.create_future())
            sent = time.perf_counter()
            await app.send(tarry.Event("bench/go", {"n": i}))
            await done[1]
            samples.append((DONE[i] - sent) * 1000)
    p = percentiles(samples)
    return {"latency_p50_ms": p["p50"], "latency_p90_ms": p["p90"], "latency_p99_ms": p["p99"]}


async def memory(backend: Backend, url: str, n: int) -> dict[str, float]:
    """Worker RSS idle and with ``n`` runs waiting; the store's bytes per waiting run."""
    app = _app(url)
    async with app:
        await asyncio.sleep(0.2)
        gc.collect()
        idle = rss_mib()
        size_before = backend.size(url)
        began = time.perf_counter()
        await _send_all(app, "bench/start", n)
        await until_status(app, "waiting", n)
        park = n / (time.perf_counter() - began)
        gc.collect()
        waiting = rss_mib()
        size = backend.size(url) - size_before
    return {"rss_idle_mib": idle, "rss_waiting_mib": waiting, "rss_added_mib": waiting - idle,
            "memory_runs": n, "disk_bytes_per_waiting_run": size / n, "memory_park_per_s": park}  # fmt: skip


def run(backend: Backend, runs: int, latency_runs: int = 200, ingest_events: int = 20_000) -> dict[str, Any]:
    """Ingest, park, resume and latency on fresh databases of ``backend``; prints and returns the figures."""
    result: dict[str, Any] = {"runs": runs, "latency_runs": latency_runs}
    result.update(asyncio.run(ingest(backend.fresh("ingest"), ingest_events)))
    result.update(asyncio.run(park_and_resume(backend.fresh("park"), runs)))
    result.update(asyncio.run(latency(backend.fresh("latency"), latency_runs)))
    backend.clean()
    return _show(result)


def cost_report(backend: Backend, runs: int) -> dict[str, Any]:
    """``database_cost`` on a fresh PostgreSQL database; prints each phase's figures and top statements."""
    result = asyncio.run(database_cost(backend.fresh("cost"), runs))
    backend.clean()
    for phase, figures in result.items():
        print(f"  {phase}: " + ", ".join(f"{k} {round(v, 2)}" for k, v in figures.items() if k != "top_statements"))
        for text, count in figures["top_statements"][:20]:
            print(f"    {count:6}  {text}")
    return {"runs": runs, **result}


def memory_report(backend: Backend, runs: int) -> dict[str, Any]:
    result = asyncio.run(memory(backend, backend.fresh("memory"), runs))
    backend.clean()
    return _show(result)


def _show(result: dict[str, Any]) -> dict[str, Any]:
    result = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()}
    print("    " + ", ".join(f"{key} {value}" for key, value in result.items()), flush=True)
    return result
