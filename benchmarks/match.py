"""Match cost: the time to route one event to its wait as the number of waiting runs grows.

N runs wait on one event name, each for its own key (``match="data.userId"``;
or an ``if_exp`` with an equality term and a residual; or, with ``any_``, in a
``wait_for_any`` of two conditions, the event's name with ``match=`` and a
second name). The worker is then
stopped and a client sends events one at a time, each matching one waiting
run: the time of each ``send`` (insert, index probe, ``if_exp`` on the
candidates, claim, record, commit) is the match cost. The waiting runs grow
in one database from the smallest size to the largest, parked through the
engine (started by events, parked by ``wait_for_event``), not inserted by hand.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import tarry
from benchmarks.common import Backend, percentiles
from benchmarks.engine import until_status

NAME = "bench/user.verified"
OTHER = "bench/user.rejected"  # the second condition of the wait_for_any variant
IF_EXP = "event.data.userId == async.data.userId && async.data.level > 1"


def define(app: tarry.Tarry, if_exp: bool, any_: bool = False) -> None:
    @app.function(trigger="bench/user.created", retries=0)
    async def waiter(ctx: tarry.Context) -> Any:
        if any_:
            chosen = await ctx.step.wait_for_any("w", [
                tarry.Wait(event=NAME, match="data.userId"), tarry.Wait(event=OTHER, match="data.userId"),
            ], timeout="7d")  # fmt: skip
            got = None if chosen is None else chosen[1]
        elif if_exp:
            got = await ctx.step.wait_for_event("w", event=NAME, timeout="7d", if_exp=IF_EXP)
        else:
            got = await ctx.step.wait_for_event("w", event=NAME, timeout="7d", match="data.userId")
        return None if got is None else got.data


async def park(url: str, first: int, last: int, waiting: int, if_exp: bool, any_: bool = False) -> float:
    """Start runs ``first`` .. ``last - 1`` and wait until ``waiting`` runs wait; runs parked per second."""
    app = tarry.Tarry("bench", database_url=url, concurrency=256)
    define(app, if_exp, any_)
    async with app:
        began = time.perf_counter()
        for start in range(first, last, 1000):
            await app.send([tarry.Event("bench/user.created", {"userId": f"u{i}"})
                            for i in range(start, min(last, start + 1000))])  # fmt: skip
            if start % 20_000 == 0:
                await until_status(app, "waiting", waiting - (last - min(last, start + 1000)))
        await until_status(app, "waiting", waiting)
        return (last - first) / (time.perf_counter() - began)


async def route(url: str, keys: list[int], if_exp: bool, any_: bool = False) -> list[float]:
    client = tarry.Tarry("bench", database_url=url)
    define(client, if_exp, any_)
    await client.start(worker=False)
    costs = []
    try:
        for i in keys:
            event = tarry.Event(NAME, {"userId": f"u{i}", "level": 2})
            began = time.perf_counter()
            await client.send(event)
            costs.append((time.perf_counter() - began) * 1000)
    finally:
        await client.close()
    return costs


def run(backend: Backend, sizes: list[int], samples: int, if_exp: bool, any_: bool = False) -> list[dict[str, Any]]:
    """Route ``samples`` events at each size; one row per size, with the p50's ratio to the smallest's."""
    url = backend.fresh("match-any" if any_ else "match-if" if if_exp else "match")
    rows: list[dict[str, Any]] = []
    parked, consumed = 0, set[int]()
    for n in sizes:
        rate = asyncio.run(park(url, parked, n, n - len(consumed), if_exp, any_))
        parked = n
        keys = _spread(n, samples, consumed)
        costs = asyncio.run(route(url, keys, if_exp, any_))
        consumed.update(keys)
        rows.append(
            {"waiting": n, "park_per_s": round(rate), **{k: round(v, 3) for k, v in percentiles(costs).items()}}
        )
        print(f"    {n:>9,} waiting: route one event p50 {rows[-1]['p50']:.3f} ms, p90 {rows[-1]['p90']:.3f} ms "
              f"(parked at {rows[-1]['park_per_s']:,}/s)", flush=True)  # fmt: skip
    for row in rows:
        row["ratio_to_smallest"] = round(row["p50"] / rows[0]["p50"], 2)
    backend.clean()
    return rows


def _spread(n: int, samples: int, taken: set[int]) -> list[int]:
    """``samples`` keys of runs still waiting, spread over the whole index."""
    stride = max(1, n // samples)
    keys = []
    for i in range(stride // 2, n, stride):
        while i in taken and i + 1 < n:
            i += 1
        if i not in taken:
            keys.append(i)
    return keys[:samples]


# -- one large event against the scanned bucket -------------------------------------------------

SCANNED_NAME = "bench/order.updated"
SCANNED_IF = {
    "small": "async.data.amount > event.data.limit",  # reads one small field of the large event
    "large": "async.data.items.exists(i, i.sku == event.data.sku)",  # reads the large list itself
}


def define_scanned(app: tarry.Tarry, reads: str) -> None:
    @app.function(trigger="bench/order.created", retries=0)
    async def scanned_waiter(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("w", event=SCANNED_NAME, timeout="7d", if_exp=SCANNED_IF[reads])
        return None if got is None else got.id


def large_event(kib: int) -> tarry.Event:
    """An event of about ``kib`` KiB that no scanned wait accepts (every wait evaluates it in full)."""
    items = [{"sku": f"sku-{i:06d}", "name": "x" * 24} for i in range(kib * 1024 // 56)]  # under CEL's budget
    return tarry.Event(SCANNED_NAME, {"amount": 1, "items": items})


def scanned(
    backend: Backend, waits: int = 100, kib: int = 450, samples: int = 5, reads: str = "small"
) -> dict[str, Any]:
    """The time of one ``send`` of a ``kib`` KiB event while ``waits`` runs wait in the scanned bucket."""
    url = backend.fresh(f"scanned-{reads}")

    async def measure() -> list[float]:
        app = tarry.Tarry("bench", database_url=url, concurrency=64)
        define_scanned(app, reads)
        async with app:
            await app.send([tarry.Event("bench/order.created", {"limit": 10, "sku": "none"}) for _ in range(waits)])
            await until_status(app, "waiting", waits)
        client = tarry.Tarry("bench", database_url=url)
        define_scanned(client, reads)
        await client.start(worker=False)
        costs = []
        try:
            for _ in range(samples):
                event = large_event(kib)
                began = time.perf_counter()
                await client.send(event)
                costs.append((time.perf_counter() - began) * 1000)
        finally:
            await client.close()
        return costs

    costs = asyncio.run(measure())
    backend.clean()
    row = {"waits": waits, "event_kib": kib, "reads": reads, **{k: round(v, 3) for k, v in percentiles(costs).items()}}
    print(f"    one {kib} KiB event against {waits} scanned waits ({reads} field): send p50 {row['p50']:.1f} ms",
          flush=True)  # fmt: skip
    return row
