"""The run and wait counts of /metrics are kept by the store as rows change; they match a count of the rows."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx

import tarry
from tarry._server import create_app
from tarry._store.base import Counts
from tests.conftest import LIMIT


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="c/start", cancel_on=[tarry.CancelOn("c/stop", match="data.id")])
    async def waits_on_two_names(ctx: tarry.Context) -> object:
        got = await ctx.step.wait_for_event("either", event=["c/a", "c/b"], match="data.id", timeout="1d")
        return None if got is None else got.data

    @app.function(trigger="c/scan")
    async def scanned(ctx: tarry.Context) -> object:
        got = await ctx.step.wait_for_event("any", event="c/any", timeout="1d")  # no index term
        return None if got is None else got.data

    @app.function(trigger="c/link")
    async def link(ctx: tarry.Context) -> object:
        handle = await ctx.step.resume_url("link")
        return await ctx.step.wait_for_resume("review", handle)

    @app.function(trigger="c/nap")
    async def nap(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1h")
        return "rested"

    @app.function(trigger="c/fail", retries=0)
    async def fail(ctx: tarry.Context) -> None:
        raise RuntimeError("no")


async def rows_counted(app: tarry.Tarry) -> Counts:
    """What counting every row says (the queries /metrics used before the counters)."""
    store = app.engine.store

    def read(c: object) -> Counts:
        runs = {r["status"]: r["n"] for r in store._x(c, "count_runs_by_status")}  # type: ignore[attr-defined]
        waits = store._x(c, "count_waits").fetchone()  # type: ignore[attr-defined]
        return Counts(runs, waits["open"], waits["scanned"])

    return await store._read(read)  # type: ignore[attr-defined, no-any-return]


def scraped(text: str) -> Counts:
    runs = {m[1]: int(float(m[2])) for m in re.finditer(r'^tarry_runs\{status="(\w+)"\} (\S+)$', text, re.M)}
    open_waits = int(float(re.search(r"^tarry_open_waits (\S+)$", text, re.M)[1]))  # type: ignore[index]
    scanned = int(float(re.search(r"^tarry_scanned_waits (\S+)$", text, re.M)[1]))  # type: ignore[index]
    return Counts({s: n for s, n in runs.items() if n}, open_waits, scanned)


async def test_counts_stay_right_through_every_change_of_a_run(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def check(stage: str) -> Counts:
                await app.idle(timeout=LIMIT)
                truth = await rows_counted(app)
                truth = Counts({s: n for s, n in truth.runs.items() if n}, truth.open_waits, truth.scanned_waits)
                assert scraped((await client.get("/metrics")).text) == truth, stage
                return truth

            async def send(name: str, **data: object) -> None:
                assert (await client.post("/e/k", json={"name": name, "data": data})).status_code == 200

            await check("empty")
            for i in range(3):
                await send("c/start", id=str(i))
            await send("c/scan")
            await send("c/link")
            await send("c/nap")
            await send("c/fail")
            parked = await check("started and parked")
            assert parked.runs == {"waiting": 5, "sleeping": 1, "failed": 1}
            assert parked.open_waits == 5 and parked.scanned_waits == 1

            await send("c/a", id="0")  # resumes by its first name
            await send("c/b", id="1")  # resumes by its second name
            await send("c/any")  # the scanned one
            resumed = await check("resumed and finished")
            assert resumed.runs == {"waiting": 2, "sleeping": 1, "failed": 1, "completed": 3}
            assert resumed.open_waits == 2 and resumed.scanned_waits == 0

            await send("c/stop", id="2")  # cancel_on
            [link] = await app.list_runs(function_id="link")
            assert await app.cancel_run(link.id)
            cancelled = await check("cancelled")
            assert cancelled.runs == {"sleeping": 1, "failed": 1, "completed": 3, "cancelled": 2}
            assert cancelled.open_waits == 0

            await send("c/start", id="again")
            assert (await check("waiting again")).open_waits == 1


async def test_a_scrape_reads_the_counters_and_counts_no_rows(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()
    define(app)
    async with app:
        await app.send(tarry.Event("c/scan"))
        await app.idle(timeout=LIMIT)
        store = app.engine.store
        await store.counts()  # on PostgreSQL, folds the deltas into one row per status
        sql = "UPDATE run_counts SET n = n + 1000 WHERE status = 'waiting'"
        await store._write(lambda c: c.execute(sql))  # type: ignore[attr-defined]
        counts = await store.counts()
    assert {s: n for s, n in counts.runs.items() if n} == {"waiting": 1001}, "the scrape read the counter, not the rows"


UNDO_0005 = {
    "sqlite": ["DROP TRIGGER runs_counted_on_insert", "DROP TRIGGER runs_counted_on_update",
               "DROP TRIGGER runs_counted_on_delete", "DROP TRIGGER waits_counted_on_insert",
               "DROP TRIGGER waits_counted_on_delete", "DROP TABLE run_counts", "DROP TABLE wait_counts",
               "DELETE FROM tarry_migrations WHERE version = 5"],
    "postgresql": ["DROP FUNCTION tarry_count_runs() CASCADE", "DROP FUNCTION tarry_count_waits() CASCADE",
                   "DROP TABLE run_counts", "DROP TABLE wait_counts",
                   "DELETE FROM tarry_migrations WHERE version = 5"],
}  # fmt: skip


async def test_the_counters_are_seeded_from_the_rows_already_stored(make_app: Callable[..., tarry.Tarry]) -> None:
    """A database from before the counters: migrating it counts what it holds."""
    app = make_app()
    define(app)
    async with app:
        for name in ("c/start", "c/scan", "c/link", "c/nap", "c/fail", "c/start"):
            await app.send(tarry.Event(name, {"id": name}))
        await app.idle(timeout=LIMIT)
        dialect = "sqlite" if app.database_url.startswith("sqlite") else "postgresql"
        store = app.engine.store

        def undo(c: object) -> None:
            for statement in UNDO_0005[dialect]:
                c.execute(statement)  # type: ignore[attr-defined]

        await store._write(undo)  # type: ignore[attr-defined]
    again = make_app()
    define(again)
    async with again:
        truth = await rows_counted(again)
        counts = await again.engine.store.counts()
    assert truth.runs == {"waiting": 4, "sleeping": 1, "failed": 1} and truth.open_waits == 4
    assert ({s: n for s, n in counts.runs.items() if n}, counts.open_waits, counts.scanned_waits) == (
        truth.runs, truth.open_waits, truth.scanned_waits)  # fmt: skip


async def test_counts_stay_right_with_two_processes_writing_and_scraping_at_once(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    """Two apps on one database (as two processes would be), writing and scraping at once."""
    first, second = make_app(), make_app()
    define(first)
    define(second)
    async with first, second:

        async def send(app: tarry.Tarry, side: str) -> None:
            for i in range(20):
                await app.send([tarry.Event("c/start", {"id": f"{side}{i}"}), tarry.Event("c/nap")])
                if i % 2:
                    await app.send(tarry.Event("c/a", {"id": f"{side}{i - 1}"}))

        async def scrape(app: tarry.Tarry) -> None:  # scrapes fold the deltas while others add to them
            for _ in range(20):
                await app.engine.store.counts()
                await asyncio.sleep(0.005)

        await asyncio.gather(send(first, "x"), send(second, "y"), scrape(first), scrape(second))
        await first.idle(timeout=LIMIT)
        await second.idle(timeout=LIMIT)
        truth = await rows_counted(first)
        counts = await second.engine.store.counts()
    assert sum(truth.runs.values()) == 80 and truth.runs["sleeping"] == 40  # some resumed, or still waiting
    assert ({s: n for s, n in counts.runs.items() if n}, counts.open_waits) == (truth.runs, truth.open_waits)


async def test_a_step_of_several_conditions_counts_once_and_as_scanned_while_a_scanned_condition_is_open(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    app = make_app(base_url="http://testserver")

    @app.function(trigger="m/all")
    async def mixed_all(ctx: tarry.Context) -> object:
        got = await ctx.step.wait_for_all("both", [
            tarry.Wait(event="m/indexed", match="data.id"), tarry.Wait(event="m/scanned"),
        ], timeout="1d")  # fmt: skip
        return [e is not None for e in got]

    @app.function(trigger="m/any")
    async def mixed_any(ctx: tarry.Context) -> object:
        got = await ctx.step.wait_for_any("either", [
            tarry.Wait(event="m/scanned-too"), tarry.Wait(event="m/other", match="data.id"),
        ], timeout="1d")  # fmt: skip
        return None if got is None else got[0]

    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def check(stage: str) -> Counts:
                await app.idle(timeout=LIMIT)
                truth = await rows_counted(app)
                truth = Counts({s: n for s, n in truth.runs.items() if n}, truth.open_waits, truth.scanned_waits)
                assert scraped((await client.get("/metrics")).text) == truth, stage
                return truth

            await app.send([tarry.Event("m/all", {"id": "1"}), tarry.Event("m/all", {"id": "2"}),
                            tarry.Event("m/any", {"id": "3"})])  # fmt: skip
            parked = await check("parked")
            assert parked.open_waits == 3 and parked.scanned_waits == 3
            await app.send(tarry.Event("m/scanned"))  # both wait_for_all: their indexed conditions are left
            partly = await check("the scanned condition of each wait_for_all taken")
            assert partly.open_waits == 3 and partly.scanned_waits == 1
            await app.send(tarry.Event("m/indexed", {"id": "2"}))  # the second run completes
            await app.send(tarry.Event("m/other", {"id": "3"}))  # the wait_for_any closes both conditions
            later = await check("a wait_for_all completed, a wait_for_any resolved by its indexed condition")
            assert later.open_waits == 1 and later.scanned_waits == 0
            await app.send(tarry.Event("m/indexed", {"id": "1"}))
            done = await check("all resolved")
            assert done.open_waits == 0 and done.scanned_waits == 0
