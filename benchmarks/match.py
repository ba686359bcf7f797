"""Match cost: the time to route one event to its wait as the number of waiting runs grows.

N runs wait on one event name, each for its own key (``match="data.userId"``;
or an ``if_exp`` with an equality term and a residual; or, with ``any_``, in a
``wait_for_any`` of two conditions, the event's name with ``match=`` and a
second name). The worker is then
stopped and a client sends events one at a time, each matching one waiting
run: the time of each ``send`` (insert, index probe, ``if_exp`` on the
candidates, claim, record, commit) is the match cost. The waiting runs grow
in one database from the smallest size to the largest.

**The fill.** Up to ``TEMPLATE`` runs at a time are parked through the engine
(started by events, parked by ``wait_for_event``). Past that, ``TEMPLATE``
runs are parked so, and their rows (event, run, step, wait, timer) are copied
as many times as the size needs by set-based SQL (``console.copy_runs``),
each copy with its own ids and its own key (``u<i>`` in the event and in the
wait's match key), so every row is one the store wrote and the counters'
triggers count them: 1,000,000 waiting runs take a few minutes instead of
45 (PostgreSQL) or a quarter of an hour (SQLite) on a loaded 2-core machine. PostgreSQL is then vacuumed and
analysed, as autovacuum does after so many inserts in a steady state (it
sets the visibility map and the planner's statistics); SQLite is not (the
store never runs ``ANALYZE``, so the planner has no statistics there either
way). The sends are the engine's, as before: only the fill changed.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import tarry
from benchmarks import console
from benchmarks.common import Backend, percentiles
from benchmarks.engine import until_status

NAME = "bench/user.verified"
OTHER = "bench/user.rejected"  # the second condition of the wait_for_any variant
IF_EXP = "event.data.userId == async.data.userId && async.data.level > 1"
TEMPLATE = 1000  # runs parked through the engine per fill; more are copies of them


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


def fill(url: str, first: int, last: int, waiting: int, if_exp: bool, any_: bool = False,
         copy: bool = True) -> dict[str, Any]:  # fmt: skip
    """Runs ``first`` .. ``last - 1`` waiting (``waiting`` in all then): parked, or parked and copied."""
    began = time.perf_counter()
    copies = (last - first) // TEMPLATE - 1 if copy else 0
    if copies < 1:
        rate = asyncio.run(park(url, first, last, waiting, if_exp, any_))
        return {"park_per_s": round(rate), "parked": last - first, "copied": 0,
                "fill_s": round(time.perf_counter() - began, 1)}  # fmt: skip
    start = last - (copies + 1) * TEMPLATE  # the template's first key; the runs before it are parked too
    rate = asyncio.run(park(url, first, start + TEMPLATE, waiting - copies * TEMPLATE, if_exp, any_))
    rows = console.Rows(url)
    found = rows.execute("SELECT r.id, e.data FROM runs r JOIN events e ON e.id = r.event_id "
                         "WHERE r.status = 'waiting' ORDER BY e.seq DESC LIMIT ?", (TEMPLATE,))  # fmt: skip
    rows.close()
    keys = [int(json.loads(data)["userId"][1:]) for _, data in found]
    if sorted(keys) != list(range(start, start + TEMPLATE)):
        raise RuntimeError("the newest waiting runs are not the template just parked")
    template = [(run_id, f'"u{i}"') for (run_id, _), i in zip(found, keys, strict=True)]
    console.copy_runs(url, template, copies, lambda k, j: f'"u{keys[j] + k * TEMPLATE}"')
    copied = time.perf_counter() - began
    count = console.again(lambda: _settle(url))
    if count != waiting:
        raise RuntimeError(f"{count} runs waiting after the fill, not {waiting}")
    return {"park_per_s": round(rate), "parked": start + TEMPLATE - first, "copied": copies * TEMPLATE,
            "copy_s": round(copied, 1), "fill_s": round(time.perf_counter() - began, 1)}  # fmt: skip


def _settle(url: str) -> int:
    """Vacuum and analyse PostgreSQL after a copy, as autovacuum would; the runs waiting."""
    rows = console.Rows(url)
    try:
        if rows.pg:
            rows.conn.autocommit = True
            rows.execute("VACUUM ANALYZE")
        [(count,)] = rows.execute("SELECT count(*) FROM runs WHERE status = 'waiting'")
        return int(count)
    finally:
        rows.close()


def run(backend: Backend, sizes: list[int], samples: int, if_exp: bool, any_: bool = False,
        copy: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Route ``samples`` events at each size; one row per size, with the p50's ratio to the smallest's.
    ``copy=False``: every waiting run parked through the engine (slow; to check that copies measure the same)."""
    url = backend.fresh("match-any" if any_ else "match-if" if if_exp else "match")
    rows: list[dict[str, Any]] = []
    parked, consumed = 0, set[int]()
    for n in sizes:
        filled = fill(url, parked, n, n - len(consumed), if_exp, any_, copy)
        parked = n
        keys = _spread(n, samples, consumed)
        costs = asyncio.run(route(url, keys, if_exp, any_))
        consumed.update(keys)
        rows.append({"waiting": n, **filled, **{k: round(v, 3) for k, v in percentiles(costs).items()}})
        how = f"{filled['parked']:,} parked at {filled['park_per_s']:,}/s" + (
            f", {filled['copied']:,} copied" if filled["copied"] else "")  # fmt: skip
        print(f"    {n:>9,} waiting: route one event p50 {rows[-1]['p50']:.3f} ms, p90 {rows[-1]['p90']:.3f} ms, "
              f"p99 {rows[-1]['p99']:.3f} ms (filled in {filled['fill_s']} s: {how})", flush=True)  # fmt: skip
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
