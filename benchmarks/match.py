"""Match cost: the time to route one event to its wait as the number of waiting runs grows.

N runs wait on one event name, each for its own key (``match="data.userId"``;
with ``--if-exp``, an ``if_exp`` with an equality term and a residual). The
worker is then stopped and a client sends events one at a time, each matching
one waiting run: the time of each ``send`` (insert, index probe, claim, record,
commit) is the match cost.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import tarry
from benchmarks.common import fresh_url, percentiles, temp_folder

NAME = "bench/user.verified"


def define(app: tarry.Tarry, if_exp: bool) -> None:
    @app.function(trigger="bench/user.created", retries=0)
    async def waiter(ctx: tarry.Context) -> Any:
        if if_exp:
            got = await ctx.step.wait_for_event(
                "w", event=NAME, timeout="7d", if_exp="event.data.userId == async.data.userId && async.data.level > 1"
            )
        else:
            got = await ctx.step.wait_for_event("w", event=NAME, timeout="7d", match="data.userId")
        return None if got is None else got.data


async def park(url: str, n: int, if_exp: bool) -> float:
    app = tarry.Tarry("bench", database_url=url, concurrency=256)
    define(app, if_exp)
    started = time.perf_counter()
    async with app:
        batch = 1000
        for first in range(0, n, batch):
            await app.send(
                [tarry.Event("bench/user.created", {"userId": f"u{i}"}) for i in range(first, min(n, first + batch))]
            )
            await app.idle(timeout=600)
    return n / (time.perf_counter() - started)


async def route(url: str, n: int, samples: int, if_exp: bool) -> list[float]:
    client = tarry.Tarry("bench", database_url=url)
    define(client, if_exp)
    await client.start(worker=False)
    costs = []
    try:
        step = max(1, n // samples)
        for i in range(0, n, step)[:samples]:
            event = tarry.Event(NAME, {"userId": f"u{i}", "level": 2})
            began = time.perf_counter()
            await client.send(event)
            costs.append((time.perf_counter() - began) * 1000)
    finally:
        await client.close()
    return costs


def run(sizes: list[int], samples: int, if_exp: bool) -> dict[str, Any]:
    folder = temp_folder()
    rows = []
    for n in sizes:
        url = fresh_url(folder, f"match-{n}-{int(if_exp)}")
        park_rate = asyncio.run(park(url, n, if_exp))
        costs = asyncio.run(route(url, n, samples, if_exp))
        rows.append(
            {"waiting": n, "park_per_s": round(park_rate), **{k: round(v, 3) for k, v in percentiles(costs).items()}}
        )
        print(f"  {n:>9,} waiting: route one event p50 {rows[-1]['p50']:.3f} ms, p90 {rows[-1]['p90']:.3f} ms "
              f"(parked at {rows[-1]['park_per_s']:,}/s)", flush=True)  # fmt: skip
    base = rows[0]["p50"]
    for row in rows:
        row["ratio_to_smallest"] = round(row["p50"] / base, 2)
    return {"workload": "match-if-exp" if if_exp else "match", "samples": samples, "rows": rows}
