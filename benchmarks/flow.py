"""Flow control's cost: runs per second under a concurrency limit and a throttle, and a claim's cost
as the runs queued behind full partitions grow.

``throughput``: N runs (10,000) over K keys (1,000, drawn at random, seeded) of one function, each
run one step then done, in-process worker (``concurrency=256``), events sent in batches of 100;
runs completed per second, once with no flow options, once with ``Concurrency(limit=2,
key="event.data.key")``, once with that and a ``Throttle`` over the whole function
(``THROTTLE``: far above any rate measured here, so it never holds a run back; what is measured
is its bookkeeping: every start is counted in its one partition).

``claim_cost``: runs of a function with ``Concurrency(limit=1, key="event.data.key")`` are queued
over 1,000 partitions whose one slot is held (claimed by this process and never finished), no
worker running. Claims first look at each new run once and hold it behind its partition (those
turns are timed apart: the cost per run of holding it). Then, again and again, one run of a new
partition is queued (the newest run of all) and the store's claim (one worker turn, ``tick``, for
one run) is timed, and so is a second turn that finds nothing to claim (a worker's poll). The queue
grows in one database from 10,000 to 100,000 runs; the claim must not grow with it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import tarry
from benchmarks.common import Backend, percentiles
from benchmarks.engine import until_status

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
STORES = ("sqlite", "postgresql")
THROTTLE = tarry.Throttle(limit=10_000, period="1s")
LIMIT = tarry.Concurrency(limit=2, key="event.data.key")
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "concurrency": {"concurrency": LIMIT},
    "concurrency_throttle": {"concurrency": LIMIT, "throttle": THROTTLE},
}


def _work(n: int) -> int:
    return n


def _app(url: str, options: dict[str, Any]) -> tarry.Tarry:
    app = tarry.Tarry("bench", database_url=url, concurrency=256)

    @app.function(trigger="bench/flow", retries=0, **options)
    async def flowing(ctx: tarry.Context) -> Any:
        return await ctx.step.run("work", _work, ctx.event.data["n"])

    return app


async def throughput(url: str, options: dict[str, Any], runs: int, keys: int) -> float:
    """Runs completed per second: ``runs`` events sent in batches of 100, until every run completed."""
    draw = random.Random(7)
    events = [tarry.Event("bench/flow", {"n": n, "key": f"k{draw.randrange(keys)}"}) for n in range(runs)]
    app = _app(url, options)
    async with app:
        began = time.perf_counter()
        for first in range(0, runs, 100):
            await app.send(events[first : first + 100])
        await until_status(app, "completed", runs)
        return runs / (time.perf_counter() - began)


async def claim_cost(url: str, sizes: list[int], samples: int, partitions: int) -> list[dict[str, Any]]:
    app = tarry.Tarry("bench", database_url=url)

    @app.function(trigger="bench/held", retries=0, concurrency=tarry.Concurrency(limit=1, key="event.data.key"))
    async def held(ctx: tarry.Context) -> None:
        return None

    await app.start(worker=False)  # this process claims by hand; nothing executes the runs it claims
    try:
        store, clock, owner = app.engine.store, app.engine.clock, "bench-claimer"
        await store.heartbeat(owner, time.time_ns() // 1_000_000)
        await _send(app, [{"key": f"p{p}"} for p in range(partitions)])
        claimed, _ = await store.tick(owner, partitions, clock.now_ms())
        assert len(claimed) == partitions, f"each partition's slot taken: {len(claimed)} of {partitions}"
        rows, queued = [], 0
        for size in sizes:
            await _send(app, [{"key": f"p{i % partitions}"} for i in range(queued, size)])
            added, queued = size - queued, size
            # Each new run is looked at once by a claim, and held behind its partition, out of the ready
            # runs: the turns doing that are timed on their own (a worker does it as the runs come).
            holding = 0.0
            while (await store.counts()).queued.get("concurrency", 0) < queued:
                began = time.perf_counter()
                claimed, _ = await store.tick(owner, 1, clock.now_ms())
                holding += time.perf_counter() - began
                assert not claimed, "nothing can start: every partition is full"
            claims, empty = [], []
            for i in range(samples):
                [event_id] = await app.send(tarry.Event("bench/held", {"key": f"free-{size}-{i}"}))
                began = time.perf_counter()
                claimed, _ = await store.tick(owner, 1, clock.now_ms())
                claims.append((time.perf_counter() - began) * 1000)
                assert [run.event.id for run in claimed] == [event_id], "the claim took the one runnable run"
                began = time.perf_counter()
                claimed, _ = await store.tick(owner, 1, clock.now_ms())
                empty.append((time.perf_counter() - began) * 1000)
                assert not claimed, "nothing else can start"
            claim, idle = percentiles(claims), percentiles(empty)
            rows.append({"queued": size, "partitions": partitions, "samples": samples,
                         "hold_us_per_run": holding * 1e6 / added,
                         "claim_p50_ms": claim["p50"], "claim_p90_ms": claim["p90"], "claim_p99_ms": claim["p99"],
                         "empty_p50_ms": idle["p50"], "empty_p90_ms": idle["p90"], "empty_p99_ms": idle["p99"]})  # fmt: skip
            print(f"    {size:,} queued ({holding * 1e6 / added:.0f} µs per run to hold it): claim p50 {claim['p50']:.3f} ms p99 {claim['p99']:.3f} ms; "
                  f"nothing to claim p50 {idle['p50']:.3f} ms p99 {idle['p99']:.3f} ms", flush=True)  # fmt: skip
    finally:
        await app.close()
    for row in rows:
        row["claim_ratio_to_smallest"] = row["claim_p50_ms"] / rows[0]["claim_p50_ms"]
        row["empty_ratio_to_smallest"] = row["empty_p50_ms"] / rows[0]["empty_p50_ms"]
    return rows


async def _send(app: tarry.Tarry, data: list[dict[str, Any]]) -> None:
    for first in range(0, len(data), 1000):
        await app.send([tarry.Event("bench/held", d) for d in data[first : first + 1000]])


def run(backend: Backend, runs: int = 10_000, keys: int = 1000, sizes: tuple[int, ...] = (10_000, 100_000),
        samples: int = 200, partitions: int = 1000) -> dict[str, Any]:  # fmt: skip
    """Every flow workload on fresh databases of ``backend``; prints and returns the figures."""
    result: dict[str, Any] = {"runs": runs, "keys": keys, "throttle": f"{THROTTLE.limit} per {THROTTLE.period}"}
    for name, options in VARIANTS.items():
        rate = asyncio.run(throughput(backend.fresh(f"flow_{name}"), options, runs, keys))
        result[f"{name}_per_s"] = round(rate, 1)
        print(f"    {name}: {rate:,.0f} runs/s", flush=True)
    result["claim"] = asyncio.run(claim_cost(backend.fresh("claim"), list(sizes), samples, partitions))
    backend.clean()
    return result


def save(store: str, figures: dict[str, Any], machine: dict[str, Any]) -> None:
    """Keep the figures as ``python -m benchmarks flow`` does: ``results/flow-<store>.json``."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = {"workload": f"flow-{store}", **figures, "machine": machine, "when": when}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"flow-{store}.json").write_text(json.dumps(result, indent=2) + "\n")


# -- rendering ----------------------------------------------------------------


def render(results: Path = RESULTS, doc: Path = DOC) -> None:
    """Write the flow figures of ``results/flow-<store>.json`` into ``doc``, between its flow markers."""
    found = {store: json.loads((results / f"flow-{store}.json").read_text()) for store in STORES
             if (results / f"flow-{store}.json").exists()}  # fmt: skip
    if not found:
        return
    lines = []
    for store, figures in found.items():
        m = figures.get("machine", {})
        lines.append(f"{store}: measured {figures.get('when', '?')}, {m.get('cpus', '?')} cores, Tarry "
                     f"{m.get('tarry', '?')}, {store} {m.get(store, '?')}.")  # fmt: skip
    lines += ["", "| store | runs over keys | no flow options (runs/s) | `Concurrency(limit=2, key=...)` (runs/s) "
              "| and `Throttle(10,000 per 1 s)` (runs/s) |", "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for store, f in found.items():
        lines.append(f"| {store} | {f['runs']:,} over {f['keys']:,} | {f['plain_per_s']:,.0f} "
                     f"| {f['concurrency_per_s']:,.0f} | {f['concurrency_throttle_per_s']:,.0f} |")  # fmt: skip
    lines += ["", "| store | runs queued (partitions full) | holding a new run | claim the one runnable run p50 | p99 "
              "| p50 / p50 at the smallest | a turn with nothing to claim p50 | p99 | p50 / p50 at the smallest |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for store, f in found.items():
        for r in f["claim"]:
            lines.append(f"| {store} | {r['queued']:,} | {r['hold_us_per_run']:,.0f} µs "
                         f"| {r['claim_p50_ms']:.3f} ms | {r['claim_p99_ms']:.3f} ms "
                         f"| {r['claim_ratio_to_smallest']:.2f} | {r['empty_p50_ms']:.3f} ms "
                         f"| {r['empty_p99_ms']:.3f} ms | {r['empty_ratio_to_smallest']:.2f} |")  # fmt: skip
    text = doc.read_text()
    head, marker, rest = text.partition("<!-- flow -->")
    if not marker:
        return
    _, _, tail = rest.partition("<!-- /flow -->")
    doc.write_text(f"{head}<!-- flow -->\n" + "\n".join(lines) + f"\n<!-- /flow -->{tail}")
    print(f"written {doc}")
