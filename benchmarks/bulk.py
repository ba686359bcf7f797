"""Bulk actions over many runs: how fast ``cancel_runs`` and ``rerun_runs`` go, how long their longest page
transaction holds the store, and how a run of another function fares meanwhile.

N runs (100,000) of one function are started (events in batches of 1,000) and each waits for an event
(a wait and its timeout's timer), as the runs a bad deploy left stuck would. Then, in the same app (its
in-process worker running), ``cancel_runs(function_id=...)`` cancels them all, and
``rerun_runs(function_id=..., status="cancelled")`` reruns them all, which the worker then executes
(each waits again) while the rerun goes on and after it. While each goes on, a probe sends one event after another to a second function (one
step, then done, with a priority that starts it ahead of the queued reruns: what it measures is the
store, not the queue) and times each from ``send`` to the run's end: its p50, p99 and worst beside the same
probe with no bulk action, which says whether the worker kept going between the pages. Each page's
transaction is timed as the store runs it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tarry
from benchmarks.common import Backend, percentiles

BATCH = 1000


def _app(url: str) -> tarry.Tarry:
    app = tarry.Tarry("bench", database_url=url)

    @app.function(trigger="bench/held")
    async def held(ctx: tarry.Context) -> None:
        await ctx.step.wait_for_event("never", event="bench/never", timeout="1d")

    @app.function(trigger="bench/probe", retries=0, priority=tarry.Priority(run="600"))  # ahead of the reruns
    async def probe(ctx: tarry.Context) -> int:
        return int(await ctx.step.run("work", lambda: 1))

    return app


async def _probe(app: tarry.Tarry, until: Callable[[], bool], at_least: int = 20) -> list[float]:
    """Send probe events one after another until ``until()`` (and ``at_least`` of them); each one's ms from
    send to its run's end."""
    samples: list[float] = []
    while not until() or len(samples) < at_least:
        began = time.perf_counter()
        [event_id] = await app.send(tarry.Event("bench/probe", {}))
        while True:
            runs = await app.runs_for_event(event_id)
            if runs and runs[0].status.finished:
                break
            await app.engine.progress.wait(0.01)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def _timed_pages(app: tarry.Tarry, name: str, pages: list[float]) -> None:
    """Time each call of the store's page method ``name`` (a transaction of one page)."""
    store = app.engine.store
    original: Callable[..., Awaitable[Any]] = getattr(store, name)

    async def timed(*args: Any) -> Any:
        began = time.perf_counter()
        try:
            return await original(*args)
        finally:
            pages.append((time.perf_counter() - began) * 1000)

    setattr(store, name, timed)


async def _measure(app: tarry.Tarry, action: Callable[[], Awaitable[Any]], page_method: str) -> dict[str, Any]:
    pages: list[float] = []
    _timed_pages(app, page_method, pages)
    began = time.perf_counter()
    task = asyncio.ensure_future(action())
    samples = await _probe(app, task.done, 1)  # the probes sent while the action goes on
    result = await task
    seconds = time.perf_counter() - began
    count = result if isinstance(result, int) else len(result)
    probe = percentiles(samples)
    return {"runs": count, "seconds": round(seconds, 2), "runs_per_s": round(count / seconds),
            "pages": len(pages), "page_p50_ms": round(sorted(pages)[len(pages) // 2], 1),
            "page_max_ms": round(max(pages), 1), "probe_p50_ms": round(probe["p50"], 2),
            "probe_p99_ms": round(probe["p99"], 2), "probe_max_ms": round(max(samples), 2),
            "probes": len(samples)}  # fmt: skip


async def _run(url: str, runs: int) -> dict[str, Any]:
    app = _app(url)
    async with app:
        for start in range(0, runs, BATCH):
            await app.send([tarry.Event("bench/held", {"n": n}) for n in range(start, min(runs, start + BATCH))])
        await app.idle(timeout=600)
        quiet = percentiles(await _probe(app, lambda: True, 200))
        cancel = await _measure(app, lambda: app.cancel_runs(function_id="held"), "cancel_runs")
        rerun = await _measure(app, lambda: app.rerun_runs(function_id="held", status="cancelled"), "rerun_runs")
    return {"runs": runs, "probe_quiet_p50_ms": round(quiet["p50"], 2), "probe_quiet_p99_ms": round(quiet["p99"], 2),
            "cancel_runs": cancel, "rerun_runs": rerun}  # fmt: skip


def run(backend: Backend, runs: int) -> dict[str, Any]:
    try:
        figures = asyncio.run(_run(backend.fresh("bulk"), runs))
    finally:
        backend.clean()
    print(f"  {runs:,} runs; a probe run with nothing else going on: p50 {figures['probe_quiet_p50_ms']} ms, "
          f"p99 {figures['probe_quiet_p99_ms']} ms")  # fmt: skip
    for name in ("cancel_runs", "rerun_runs"):
        f = figures[name]
        print(f"  {name}: {f['runs']:,} runs in {f['seconds']} s ({f['runs_per_s']:,}/s), {f['pages']} pages "
              f"(p50 {f['page_p50_ms']} ms, longest {f['page_max_ms']} ms); meanwhile {f['probes']} probe runs: "
              f"p50 {f['probe_p50_ms']} ms, p99 {f['probe_p99_ms']} ms, worst {f['probe_max_ms']} ms")  # fmt: skip
    return figures
