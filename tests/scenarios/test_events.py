"""Events through the public API: ids, dedup, delayed delivery, fan-out, wildcards, batches."""

from __future__ import annotations

from datetime import timedelta

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT


def echo(app: tarry.Tarry, trigger: str | list[str], id: str) -> None:  # noqa: A002
    @app.function(trigger=trigger, id=id)
    async def fn(ctx: tarry.Context) -> str:
        return ctx.event.name


async def test_send_returns_sortable_unique_ids_in_order(running: tarry.Tarry) -> None:
    ids = await running.send([tarry.Event("a"), tarry.Event("b"), tarry.Event("c")])
    ids += await running.send(tarry.Event("d"))
    assert len(set(ids)) == 4 and ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)


async def test_send_accepts_json_objects_too(running: tarry.Tarry) -> None:
    [event_id] = await running.send({"name": "app/x", "data": {"n": 1}})  # type: ignore[arg-type]
    assert event_id


async def test_a_duplicate_id_within_24_hours_is_accepted_but_not_processed(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    echo(app, "ping", "ping")
    async with app:
        first = await app.send(tarry.Event("ping", id="p-1"))
        await clock.advance("23h")
        again = await app.send(tarry.Event("ping", {"other": "data"}, id="p-1"))
        assert again == first
        await app.idle(timeout=LIMIT)
        assert len(await app.list_runs(function_id="ping")) == 1
        await clock.advance("2h")  # the window has passed: a new event
        later = await app.send(tarry.Event("ping", id="p-1"))
        assert later != first
        await app.idle(timeout=LIMIT)
        assert len(await app.list_runs(function_id="ping")) == 2


async def test_duplicates_inside_one_batch_keep_the_first(app: tarry.Tarry) -> None:
    echo(app, "ping", "ping")
    async with app:
        ids = await app.send([tarry.Event("ping", id="same"), tarry.Event("ping", id="same")])
        await app.idle(timeout=LIMIT)
        assert ids[0] == ids[1]
        assert len(await app.list_runs(function_id="ping")) == 1


async def test_an_event_with_a_future_ts_is_delivered_then(app: tarry.Tarry, clock: VirtualClock) -> None:
    echo(app, "later", "later")
    async with app:
        due = clock.now() + timedelta(hours=2)
        [event_id] = await app.send(tarry.Event("later", ts=due))
        await app.idle(timeout=LIMIT)
        assert await app.runs_for_event(event_id) == []
        await clock.advance("119m")
        assert await app.runs_for_event(event_id) == []
        await clock.advance("1m")
        [run] = await app.runs_for_event(event_id)
        assert run.status == "completed"
        assert run.event.ts == int(due.timestamp() * 1000)
        assert run.created_at == due


async def test_a_past_ts_is_kept_and_delivered_at_once(app: tarry.Tarry, clock: VirtualClock) -> None:
    echo(app, "old", "old")
    async with app:
        [event_id] = await app.send(tarry.Event("old", ts=1_000))
        await app.idle(timeout=LIMIT)
        [run] = await app.runs_for_event(event_id)
        assert run.status == "completed" and run.event.ts == 1_000


async def test_an_event_starts_every_matching_function_once(app: tarry.Tarry) -> None:
    echo(app, "user/signed.up", "exact")
    echo(app, "user/*", "wildcard")
    echo(app, ["billing/paid", "user/signed.up"], "listed")
    echo(app, ["user/*", "user/signed.up"], "twice-listed")
    echo(app, "billing/*", "elsewhere")
    async with app:
        [event_id] = await app.send(tarry.Event("user/signed.up"))
        await app.idle(timeout=LIMIT)
        runs = await app.runs_for_event(event_id)
        [other] = await app.send(tarry.Event("billing/paid"))
        await app.idle(timeout=LIMIT)
        billing = await app.runs_for_event(other)
    assert sorted(r.function_id for r in runs) == ["exact", "listed", "twice-listed", "wildcard"]
    assert all(r.output == "user/signed.up" for r in runs)
    assert sorted(r.function_id for r in billing) == ["elsewhere", "listed"]


async def test_an_event_no_function_listens_to_is_stored_and_starts_nothing(running: tarry.Tarry) -> None:
    [event_id] = await running.send(tarry.Event("nobody/listens"))
    await running.idle(timeout=LIMIT)
    assert await running.runs_for_event(event_id) == []


@pytest.mark.parametrize(
    "bad",
    [
        tarry.Event("mutated", {}),  # data made invalid after construction, below
        "app/ping",
        42,
        {"name": ""},
        {"name": "ok", "data": [1]},
        {"name": "ok", "colour": "red"},
    ],
)
async def test_a_batch_with_one_invalid_event_stores_nothing(app: tarry.Tarry, bad: object) -> None:
    echo(app, "ping", "ping")
    if isinstance(bad, tarry.Event):
        bad.data["when"] = object()
    async with app:
        with pytest.raises(tarry.InvalidEventError):
            await app.send([tarry.Event("ping", {"n": 1}), bad])  # type: ignore[list-item]
        await app.idle(timeout=LIMIT)
        assert await app.list_runs() == []
        [event_id] = await app.send(tarry.Event("ping"))  # the store is still fine
        await app.idle(timeout=LIMIT)
        assert len(await app.runs_for_event(event_id)) == 1


async def test_send_refuses_what_is_not_an_event(running: tarry.Tarry) -> None:
    with pytest.raises(tarry.InvalidEventError, match=r"tarry\.Event"):
        await running.send("app/ping")  # type: ignore[arg-type]


async def test_an_empty_batch_stores_nothing(running: tarry.Tarry) -> None:
    assert await running.send([]) == []


async def test_system_events_report_each_ending(app: tarry.Tarry, clock: VirtualClock) -> None:
    seen: list[dict] = []

    @app.function(trigger="job/start", retries=0)
    async def job(ctx: tarry.Context) -> str:
        if ctx.event.data.get("fail"):
            raise RuntimeError("broke")
        if ctx.event.data.get("sleep"):
            await ctx.step.sleep("nap", "1d")
        return "fine"

    @app.function(trigger="tarry/function.*")
    async def audit(ctx: tarry.Context) -> None:
        seen.append({"name": ctx.event.name, **ctx.event.data})

    async with app:
        [ok] = await app.send(tarry.Event("job/start", {"n": 1}))
        await app.send(tarry.Event("job/start", {"fail": True}))
        [sleepy] = await app.send(tarry.Event("job/start", {"sleep": True}))
        await app.idle(timeout=LIMIT)
        [sleeping] = await app.runs_for_event(sleepy)
        assert await app.cancel_run(sleeping.id)
        await app.idle(timeout=LIMIT)
        [ok_run] = await app.runs_for_event(ok)

    names = sorted(s["name"] for s in seen)
    assert names == ["tarry/function.cancelled", "tarry/function.failed", "tarry/function.finished",
                     "tarry/function.finished"]  # fmt: skip
    finished_ok = next(s for s in seen if s["name"] == "tarry/function.finished" and "output" in s)
    assert finished_ok["function_id"] == "job" and finished_ok["run_id"] == ok_run.id
    assert finished_ok["output"] == "fine"
    assert finished_ok["event"] == {"name": "job/start", "data": {"n": 1}, "id": ok, "ts": ok_run.event.ts}
    failed = next(s for s in seen if s["name"] == "tarry/function.failed")
    assert failed["error"]["name"] == "RuntimeError" and failed["error"]["message"] == "broke"
    assert failed["error"]["traceback"].endswith("RuntimeError: broke\n"), "the event carries the run's error"
    assert all(s["function_id"] == "job" for s in seen), "audit never triggers on its own runs"


async def test_a_function_never_triggers_on_its_own_system_events(app: tarry.Tarry) -> None:
    @app.function(trigger="tarry/function.finished")
    async def watcher(ctx: tarry.Context) -> None:
        return None

    echo(app, "go", "go")
    async with app:
        await app.send(tarry.Event("go"))
        await app.idle(timeout=LIMIT)
        assert len(await app.list_runs(function_id="watcher")) == 1
