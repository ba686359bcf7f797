"""No event, timer or run row can stop the engine: matching is total, and one bad row costs only itself.

Events that make matching raise (a field nested hundreds of levels deep, a list past CEL's iteration
budget) are accepted and delivered, sent now or later; a row that fails for another reason (here a
rule of the engine that raises for one event, timer or run) is undone alone, tried again, and set aside
as a dead letter, visible in the API and ``/metrics``, while the others are delivered, fired and claimed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tests.conftest import LIMIT

SKU = 7
NOW_PLUS = 10 * 60 * 1000  # a delivery time 10 minutes ahead


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="user/created")
    async def by_user(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("verified", event="user/verified", match="data.userId", timeout="1d")
        return None if got is None else got.data["userId"]

    @app.function(trigger="order/created")
    async def by_sku(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("stock", event="stock/changed", timeout="1d",
                                            if_exp="async.data.items.exists(i, i == event.data.sku)")  # fmt: skip
        return None if got is None else got.data["items"]

    @app.function(trigger="nap/started")
    async def napper(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1h")
        return "rested"

    @app.function(trigger="job/queued")
    async def job(ctx: tarry.Context) -> str:
        return "done"

    @app.function(trigger="doomed/started")
    async def doomed(ctx: tarry.Context) -> Any:
        return await ctx.step.wait_for_event("never", event="doomed/never", timeout="1h", on_timeout="cancel")


def deep(levels: int) -> Any:
    value: Any = "u1"
    for _ in range(levels):
        value = {"a": value}
    return value


# The two events of the report: each makes a naive matcher raise inside the delivering transaction.
BAD = {
    # 490 levels: within the server's nesting limit, past what a recursive key normalisation survives
    "deep": tarry.Event("user/verified", {"userId": deep(490)}),
    "long": tarry.Event("stock/changed", {"items": list(range(100, 10_100))}),  # exists() past CEL's budget
}
GOOD = {
    "deep": tarry.Event("user/verified", {"userId": "u1"}),
    "long": tarry.Event("stock/changed", {"items": [SKU]}),
}
RESULT = {"deep": "u1", "long": [SKU]}


@pytest.fixture
async def started(app: tarry.Tarry) -> AsyncIterator[tarry.Tarry]:
    define(app)
    async with app:
        yield app


@pytest.fixture
async def served(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[tuple[tarry.Tarry, httpx.AsyncClient]]:
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def waiting_runs(app: tarry.Tarry) -> dict[str, str]:
    """Start one run waiting by key and one waiting in the scanned bucket; their ids by case."""
    [by_user] = await app.send(tarry.Event("user/created", {"userId": "u1"}))
    [by_sku] = await app.send(tarry.Event("order/created", {"sku": SKU}))
    await app.send(tarry.Event("order/created", {"sku": SKU + 1}))  # stays waiting: every try of an event meets it
    await app.idle(timeout=LIMIT)
    runs = {"deep": (await app.runs_for_event(by_user))[0], "long": (await app.runs_for_event(by_sku))[0]}
    assert {r.status for r in runs.values()} == {tarry.RunStatus.WAITING}, runs
    return {case: run.id for case, run in runs.items()}


def poison(app: tarry.Tarry, monkeypatch: pytest.MonkeyPatch, name: str = "poison/pill", why: str = "") -> None:
    """Make one of the engine's rules raise for events named ``name`` (a row that fails for its own reason)."""
    engine = app.engine
    route = engine.route

    def failing(event_name: str, exclude: str | None, only: str | None) -> list[tuple[str, tuple[Any, ...]]]:
        if event_name == name:
            raise RuntimeError(f"no route for {event_name}{why}")
        return route(event_name, exclude, only)

    monkeypatch.setattr(engine, "route", failing)


@pytest.mark.parametrize("case", ["deep", "long"])
async def test_an_event_that_breaks_matching_sent_now_is_accepted_and_its_batch_delivered(
    served: tuple[tarry.Tarry, httpx.AsyncClient], case: str
) -> None:
    app, client = served
    run_ids = await waiting_runs(app)
    batch = [BAD[case].to_json(), GOOD[case].to_json()]
    response = await client.post("/e/key", json=[{k: v for k, v in e.items() if v is not None} for e in batch])
    assert response.status_code == 200, response.text
    bad_id, _ = response.json()["ids"]
    await app.idle(timeout=LIMIT)
    run = await app.get_run(run_ids[case])
    assert run is not None and run.status == tarry.RunStatus.COMPLETED and run.output == RESULT[case]
    stored = await app.engine.store.get_event(bad_id)
    assert stored is not None and stored.delivered, "the bad event is stored and delivered: it matched nothing"
    assert await app.dead_letters() == []


@pytest.mark.parametrize("case", ["deep", "long"])
async def test_an_event_that_breaks_matching_sent_for_later_stops_no_turn(
    started: tarry.Tarry, clock: Any, case: str
) -> None:
    app = started
    run_ids = await waiting_runs(app)
    now = clock.now_ms()
    [bad] = await app.send([tarry.Event(BAD[case].name, BAD[case].data, ts=now + NOW_PLUS)])
    [nap] = await app.send(tarry.Event("nap/started"))
    await app.idle(timeout=LIMIT)
    [job] = await app.send(tarry.Event("job/queued", ts=now + 2 * NOW_PLUS))
    await clock.advance("2h")
    [napped] = await app.runs_for_event(nap)
    [done] = await app.runs_for_event(job)
    assert (napped.status, napped.output) == (tarry.RunStatus.COMPLETED, "rested"), "the timer fired"
    assert (done.status, done.output) == (tarry.RunStatus.COMPLETED, "done"), "a run was claimed"
    waiting = await app.get_run(run_ids[case])
    assert waiting is not None and waiting.status == tarry.RunStatus.WAITING, "the bad event matched nothing"
    stored = await app.engine.store.get_event(bad)
    assert stored is not None and stored.delivered and await app.dead_letters() == []
    await app.send(GOOD[case])
    await app.idle(timeout=LIMIT)
    resumed = await app.get_run(run_ids[case])
    assert resumed is not None and resumed.output == RESULT[case]


async def test_an_event_whose_delivery_raises_is_kept_and_set_aside_and_the_batch_delivered(
    served: tuple[tarry.Tarry, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = served
    poison(app, monkeypatch)
    response = await client.post("/e/key", json=[{"name": "poison/pill", "data": {"n": 1}}, {"name": "job/queued"}])
    assert response.status_code == 200, response.text
    pill, job = response.json()["ids"]
    await app.idle(timeout=LIMIT)
    [run] = await app.runs_for_event(job)
    assert run.status == tarry.RunStatus.COMPLETED
    stored = await app.engine.store.get_event(pill)
    assert stored is not None and stored.event.data == {"n": 1} and not stored.delivered, "kept, not delivered"
    [letter] = await app.dead_letters()
    assert (letter.kind, letter.event_id, letter.failures) == (tarry.DeadLetterKind.EVENT, pill, 3)
    assert letter.error == {"name": "RuntimeError", "message": "no route for poison/pill"}
    listed = (await client.get("/api/v1/dead-letters")).json()
    assert [(d["kind"], d["event_id"]) for d in listed["dead_letters"]] == [("event", pill)]
    assert listed["next_cursor"] is None
    assert "tarry_dead_letters 1.0" in (await client.get("/metrics")).text
    await app.send(tarry.Event("job/queued"))  # it stays aside: later turns do not try it again
    await app.idle(timeout=LIMIT)
    assert [d.failures for d in await app.dead_letters()] == [3]


async def test_a_failure_whose_message_cannot_be_stored_as_is_still_sets_the_row_aside(
    started: tarry.Tarry, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = started
    poison(app, monkeypatch, why=" \udc80")  # a lone surrogate: not UTF-8, so not JSON the store can hold
    pill, job = await app.send([tarry.Event("poison/pill"), tarry.Event("job/queued")])
    await app.idle(timeout=LIMIT)
    [run] = await app.runs_for_event(job)
    assert run.status == tarry.RunStatus.COMPLETED
    [letter] = await app.dead_letters()
    assert (letter.event_id, letter.failures) == (pill, 3)
    assert letter.error == {"name": "RuntimeError", "message": "no route for poison/pill \\udc80"}
    worker = app.engine.worker
    assert worker is not None and not worker.ended.done()


async def test_a_delayed_event_whose_delivery_raises_lets_timers_fire_and_runs_be_claimed(
    started: tarry.Tarry, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = started
    poison(app, monkeypatch)
    now = clock.now_ms()
    [pill] = await app.send(tarry.Event("poison/pill", ts=now + NOW_PLUS))
    [nap] = await app.send(tarry.Event("nap/started"))
    [job] = await app.send(tarry.Event("job/queued", ts=now + 2 * NOW_PLUS))
    await clock.advance("2h")
    [napped] = await app.runs_for_event(nap)
    [done] = await app.runs_for_event(job)
    assert napped.status == done.status == tarry.RunStatus.COMPLETED
    [letter] = await app.dead_letters()
    assert (letter.kind, letter.event_id, letter.failures) == (tarry.DeadLetterKind.EVENT, pill, 3)


async def test_a_timer_that_raises_is_set_aside_and_the_others_fire(
    started: tarry.Tarry, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = started
    [doomed_event] = await app.send(tarry.Event("doomed/started"))
    [nap] = await app.send(tarry.Event("nap/started"))
    await app.idle(timeout=LIMIT)
    [doomed] = await app.runs_for_event(doomed_event)
    engine = app.engine
    system_events = engine.system_events

    def failing(run: tarry.Run, *args: Any) -> Any:
        if run.function_id == "doomed":
            raise RuntimeError("cannot describe this run")
        return system_events(run, *args)

    monkeypatch.setattr(engine, "system_events", failing)
    await clock.advance("2h")  # the doomed wait's timeout (cancel the run) and the nap's end both come due
    [napped] = await app.runs_for_event(nap)
    assert napped.status == tarry.RunStatus.COMPLETED
    [letter] = await app.dead_letters()
    assert (letter.kind, letter.run_id, letter.step_id) == (tarry.DeadLetterKind.TIMER, doomed.id, "never")
    still = await app.get_run(doomed.id)
    assert still is not None and still.status == tarry.RunStatus.WAITING, "undone: the run is as it was"


def corrupt(url: str, event_id: str) -> None:
    """Damage one stored event so that it cannot be parsed (as a faulty disk or a hand edit could)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE events SET data = '{not json' WHERE id = ?", (event_id,))
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE events SET data = '{not json' WHERE id = %s", (event_id,))


async def test_a_run_that_cannot_be_loaded_is_set_aside_and_the_others_claimed(
    make_app: Callable[..., tarry.Tarry], db_url: str
) -> None:
    client = make_app()
    define(client)
    await client.start(worker=False)
    try:
        broken, fine = await client.send([tarry.Event("job/queued"), tarry.Event("job/queued")])
        [broken_run] = await client.runs_for_event(broken)
    finally:
        await client.close()
    corrupt(db_url, broken)
    app = make_app()
    define(app)
    async with app:
        await app.idle(timeout=LIMIT)
        [run] = await app.runs_for_event(fine)
        assert run.status == tarry.RunStatus.COMPLETED
        [letter] = await app.dead_letters()
        assert (letter.kind, letter.run_id, letter.event_id) == (tarry.DeadLetterKind.RUN, broken_run.id, broken)
        assert letter.failures == 3 and letter.error["name"] == "JSONDecodeError"
        assert not await app.engine.store.has_work(app.clock.now_ms()), "failed and set aside: not claimed again"


async def test_dead_letters_refuse_bad_paging(served: tuple[tarry.Tarry, httpx.AsyncClient]) -> None:
    app, client = served
    for query in ("cursor=abc", "cursor=0", "limit=0"):
        response = await client.get(f"/api/v1/dead-letters?{query}")
        assert response.status_code == 400 and ("cursor" in response.text or "limit" in response.text)
    with pytest.raises(ValueError, match="limit"):
        await app.dead_letters(limit=0)
    with pytest.raises(ValueError, match="before"):
        await app.dead_letters(before=0)


async def test_one_event_costs_a_bounded_number_of_scanned_evaluations_oldest_waits_first(
    started: tarry.Tarry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tarry._store import sql_waits

    app = started
    orders = await app.send([tarry.Event("order/created", {"sku": SKU}) for _ in range(5)])
    await app.idle(timeout=LIMIT)
    runs = [(await app.runs_for_event(order))[0].id for order in orders]
    monkeypatch.setattr(sql_waits, "SCAN_BUDGET", 3)
    oldest_waits = [w.run_id for w in reversed(await app.engine.open_waits())]  # newest first: reversed
    assert len(oldest_waits) == 5
    await app.send(tarry.Event("stock/changed", {"items": [SKU]}))
    await app.idle(timeout=LIMIT)
    done = await statuses(app, oldest_waits)
    assert done == [tarry.RunStatus.COMPLETED] * 3 + [tarry.RunStatus.WAITING] * 2, "the oldest three waits"
    assert "2 scanned waits of 'stock/changed' were past the budget" in caplog.text, "said, not silent"
    await app.send(tarry.Event("stock/changed", {"items": [SKU]}))  # the next event reaches the others
    await app.idle(timeout=LIMIT)
    assert await statuses(app, runs) == [tarry.RunStatus.COMPLETED] * 5


async def statuses(app: tarry.Tarry, run_ids: list[str]) -> list[tarry.RunStatus | None]:
    runs = [await app.get_run(run_id) for run_id in run_ids]
    return [None if run is None else run.status for run in runs]


async def test_a_cancel_on_that_cannot_listen_costs_only_its_own_listener(
    app: tarry.Tarry, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.function(trigger="team/joined", cancel_on=[tarry.CancelOn(event="team/left", match="data.userId")])
    async def welcome(ctx: tarry.Context) -> str:
        return "welcomed"

    @app.function(trigger="team/joined")
    async def count(ctx: tarry.Context) -> str:
        return "counted"

    def broken(*args: Any) -> Any:
        raise RuntimeError("cannot listen")

    monkeypatch.setattr("tarry._engine.engine.wait_for_cancel_on", broken)
    async with app:
        [event_id] = await app.send(tarry.Event("team/joined", {"userId": "u1"}))
        await app.idle(timeout=LIMIT)
        runs = await app.runs_for_event(event_id)
        assert sorted(r.output for r in runs) == ["counted", "welcomed"]
        assert await app.dead_letters() == []
