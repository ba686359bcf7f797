"""Trigger filters (API §10): ``tarry.Trigger(name, if_exp=...)`` starts a run only for the events its CEL
expression holds for; an event it does not hold for, or fails to evaluate on, is filtered (no run, no
skip record). On both stores, through the public API."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


async def started(app: tarry.Tarry, event: tarry.Event) -> list[str]:
    """Send ``event``, wait until idle, and return the function ids of the runs it started, sorted."""
    [event_id] = await app.send(event)
    await app.idle(timeout=LIMIT)
    return sorted(r.function_id for r in await app.runs_for_event(event_id))


def echo(app: tarry.Tarry, function_id: str, trigger: Any, **options: Any) -> None:
    @app.function(trigger=trigger, id=function_id, **options)
    async def handler(ctx: tarry.Context) -> Any:
        return ctx.event.data


@asynccontextmanager
async def served(app: tarry.Tarry) -> AsyncIterator[httpx.AsyncClient]:
    """The app, running, and a client of its JSON API."""
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_a_filter_on_a_name_starts_runs_only_for_the_events_it_holds_for(app: tarry.Tarry) -> None:
    echo(app, "big-orders", tarry.Trigger("shop/order.created", if_exp="event.data.total > 100"))
    async with app:
        assert await started(app, tarry.Event("shop/order.created", {"total": 250})) == ["big-orders"]
        assert await started(app, tarry.Event("shop/order.created", {"total": 20})) == []
        assert await started(app, tarry.Event("shop/order.paid", {"total": 250})) == [], "another name"
        [run] = await app.list_runs(function_id="big-orders")
        assert run.status == tarry.RunStatus.COMPLETED and run.output == {"total": 250}


async def test_a_filter_on_a_prefix_starts_runs_for_every_name_with_the_prefix(app: tarry.Tarry) -> None:
    echo(app, "vip", tarry.Trigger("shop/*", if_exp="event.data.vip == true && event.name != 'shop/ignored'"))
    async with app:
        assert await started(app, tarry.Event("shop/order.created", {"vip": True})) == ["vip"]
        assert await started(app, tarry.Event("shop/cart.abandoned", {"vip": True})) == ["vip"]
        assert await started(app, tarry.Event("shop/cart.abandoned", {"vip": False})) == []
        assert await started(app, tarry.Event("shop/ignored", {"vip": True})) == []
        assert await started(app, tarry.Event("shopping/x", {"vip": True})) == []


async def test_filters_read_every_field_of_the_event(app: tarry.Tarry) -> None:
    echo(app, "keyed", tarry.Trigger("app/x", if_exp="event.key == 'k1' && event.v == '2' && event.id != ''"))
    async with app:
        assert await started(app, tarry.Event("app/x", key="k1", v="2")) == ["keyed"]
        assert await started(app, tarry.Event("app/x", key="k1", v="1")) == []
        assert await started(app, tarry.Event("app/x", v="2")) == [], "no key: null is not 'k1'"


async def test_a_filter_in_a_list_with_plain_names(app: tarry.Tarry) -> None:
    echo(app, "sync-user", ["user/deleted", tarry.Trigger("user/updated", if_exp="'email' in event.data"), "team/*"])
    async with app:
        assert await started(app, tarry.Event("user/deleted")) == ["sync-user"]
        assert await started(app, tarry.Event("team/renamed")) == ["sync-user"]
        assert await started(app, tarry.Event("user/updated", {"email": "a@b.c"})) == ["sync-user"]
        assert await started(app, tarry.Event("user/updated", {"name": "Ada"})) == []


async def test_several_matching_triggers_start_one_run_per_event(app: tarry.Tarry) -> None:
    echo(app, "both-filters", [tarry.Trigger("shop/*", if_exp="event.data.a"),
                               tarry.Trigger("shop/order", if_exp="event.data.b")])  # fmt: skip
    echo(app, "filter-and-name", ["shop/order", tarry.Trigger("shop/*", if_exp="event.data.a")])
    echo(app, "same-twice", [tarry.Trigger("shop/order", if_exp="event.data.a"),
                             tarry.Trigger("shop/order", if_exp="event.data.a")])  # fmt: skip
    async with app:
        every = ["both-filters", "filter-and-name", "same-twice"]
        assert await started(app, tarry.Event("shop/order", {"a": True, "b": True})) == every
        assert await started(app, tarry.Event("shop/order", {"a": False, "b": True})) == ["both-filters",
                                                                                          "filter-and-name"]  # fmt: skip
        assert await started(app, tarry.Event("shop/order", {"a": False, "b": False})) == ["filter-and-name"]
        assert await started(app, tarry.Event("shop/cart", {"a": True, "b": True})) == ["both-filters",
                                                                                        "filter-and-name"]  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [{}, {"total": "a lot"}, {"total": None}, {"total": [1, 2]}, {"total": {"n": 1}}],
    ids=["missing-field", "a-string", "null", "a-list", "a-map"],
)
async def test_an_expression_that_fails_to_evaluate_starts_no_run_and_records_no_skip(
    app: tarry.Tarry, data: dict[str, Any]
) -> None:
    echo(app, "big-orders", tarry.Trigger("shop/order.created", if_exp="event.data.total > 100"))
    echo(app, "limited", "shop/order.created", rate_limit=tarry.RateLimit(limit=1, period="1h"))
    async with served(app) as client:
        [event_id] = await app.send(tarry.Event("shop/order.created", data))
        await app.idle(timeout=LIMIT)
        assert [r.function_id for r in await app.runs_for_event(event_id)] == ["limited"]
        [second] = await app.send(tarry.Event("shop/order.created", data))
        await app.idle(timeout=LIMIT)
        assert await app.runs_for_event(second) == []
        events = {e["id"]: e for e in (await client.get("/api/v1/events")).json()["events"]}
        assert events[event_id]["skipped"] == [], "filtered, not skipped"
        assert events[second]["skipped"] == [{"function_id": "limited", "reason": "rate_limit"}]
        runs = (await client.get(f"/api/v1/events/{event_id}/runs")).json()
        assert runs["skipped"] == [] and [r["function_id"] for r in runs["runs"]] == ["limited"]


async def test_a_filtered_event_is_stored_and_still_resumes_waits(app: tarry.Tarry) -> None:
    echo(app, "big-orders", tarry.Trigger("shop/order.created", if_exp="event.data.total > 100"))

    @app.function(trigger="shop/watch")
    async def watch(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("order", event="shop/order.created", timeout="1h")
        return got.data if got else None

    async with app:
        watching = await start_run(app, tarry.Event("shop/watch"))
        assert await started(app, tarry.Event("shop/order.created", {"total": 5})) == []
        assert (await app.wait_for_run(watching.id, timeout=LIMIT)).output == {"total": 5}


async def test_a_filtered_event_is_not_counted_by_flow_control(app: tarry.Tarry) -> None:
    """The filter is admission's first rule: an event it turns away takes no rate-limit or idempotency slot."""
    echo(app, "paid", tarry.Trigger("shop/order", if_exp="event.data.paid"),
         rate_limit=tarry.RateLimit(limit=1, period="1h"), idempotency="event.data.order")  # fmt: skip
    async with app:
        assert await started(app, tarry.Event("shop/order", {"order": "o1", "paid": False})) == []
        assert await started(app, tarry.Event("shop/order", {"order": "o1", "paid": True})) == ["paid"]
        assert await started(app, tarry.Event("shop/order", {"order": "o2", "paid": True})) == [], "rate limit"


async def test_a_filter_on_a_system_event(app: tarry.Tarry) -> None:
    echo(app, "billing", "billing/charge")
    echo(app, "other", "billing/charge")
    echo(app, "audit", tarry.Trigger("tarry/function.finished", if_exp="event.data.function_id == 'billing'"))
    async with app:
        await app.send(tarry.Event("billing/charge", {"amount": 3}))
        await app.idle(timeout=LIMIT)
        [audit] = await app.list_runs(function_id="audit")
        assert audit.event.name == "tarry/function.finished"
        assert audit.output["function_id"] == "billing" and audit.output["output"] == {"amount": 3}
        assert len(await app.list_runs(function_id="other")) == 1


async def test_invoke_starts_a_filtered_function_whatever_its_filter(app: tarry.Tarry) -> None:
    """``step.invoke`` always starts a run of its own (API §9), as it ignores admission's other rules."""
    echo(app, "big-orders", tarry.Trigger("shop/order.created", if_exp="event.data.total > 100"))

    @app.function(trigger="shop/check")
    async def check(ctx: tarry.Context) -> Any:
        return await ctx.step.invoke("invoke", "big-orders", data={"total": 1})

    async with app:
        run = await start_run(app, tarry.Event("shop/check"))
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == {"total": 1}


async def test_a_sync_function_with_a_filter(app: tarry.Tarry) -> None:
    @app.function(trigger=tarry.Trigger("app/x", if_exp="event.data.n % 2 == 0"))
    def even(ctx: tarry.Context) -> Any:
        return ctx.step.run_sync("double", lambda: ctx.event.data["n"] * 2)

    async with app:
        assert await started(app, tarry.Event("app/x", {"n": 3})) == []
        run = await start_run(app, tarry.Event("app/x", {"n": 4}))
        assert run.output == 8


async def test_filters_of_one_event_share_a_budget(app: tarry.Tarry, caplog: pytest.LogCaptureFixture) -> None:
    """A filter reads the parts of the event it names; what the filters of one event hand to CEL is bounded
    (8 MiB), so a large event cannot cost unbounded CPU: past the budget a filter does not hold."""
    blob = "x" * 400_000
    for i in range(25):
        echo(app, f"reads-blob-{i}", tarry.Trigger("big/event", if_exp="size(event.data.blob) > 0"))
        echo(app, f"reads-flag-{i}", tarry.Trigger("big/event", if_exp="event.data.flag"))
    async with app:
        with caplog.at_level(logging.WARNING, logger="tarry.store"):
            got = await started(app, tarry.Event("big/event", {"blob": blob, "flag": True}))
        blob_runs = [f for f in got if f.startswith("reads-blob-")]
        assert 15 <= len(blob_runs) < 25, len(blob_runs)  # about 8 MiB / 400 KB of them
        assert sum(f.startswith("reads-flag-") for f in got) >= 1
        assert any("past the budget" in r.getMessage() for r in caplog.records), caplog.text
        # a small event is far within the budget: every filter is evaluated
        assert len(await started(app, tarry.Event("big/event", {"blob": "x", "flag": True}))) == 50


async def test_a_filter_in_a_list_with_a_schedule(app: tarry.Tarry, clock: VirtualClock) -> None:
    seen: list[str] = []

    @app.function(trigger=[tarry.Cron("@hourly"), tarry.Trigger("report/requested", if_exp="event.data.now")])
    async def report(ctx: tarry.Context) -> None:
        seen.append(ctx.event.name)

    async with app:
        assert await started(app, tarry.Event("report/requested", {"now": False})) == []
        assert await started(app, tarry.Event("report/requested", {"now": True})) == ["report"]
        await clock.advance("2h")
        assert seen == ["report/requested", "tarry/scheduled.timer", "tarry/scheduled.timer"]


async def test_the_functions_api_shows_filters_and_failure_handlers(app: tarry.Tarry) -> None:
    async def on_failure(ctx: tarry.Context) -> None: ...

    echo(app, "mixed", ["app/x", tarry.Trigger("shop/*", if_exp="event.data.vip"), tarry.Cron("0 9 * * MON")],
         retries=2, on_failure=on_failure)  # fmt: skip
    async with served(app) as client:
        body = (await client.get("/api/v1/functions")).json()
    by_id = {f["id"]: f for f in body["functions"]}
    assert by_id["mixed"] == {
        "id": "mixed", "retries": 2, "options": {"on_failure": "mixed-failure"},
        "triggers": [{"event": "app/x"}, {"event": "shop/*", "if_exp": "event.data.vip"},
                     {"cron": "0 9 * * MON", "timezone": "UTC"}],
    }  # fmt: skip
    assert by_id["mixed-failure"] == {
        "id": "mixed-failure", "retries": 2, "options": {},
        "triggers": [{"event": "tarry/function.failed", "if_exp": 'event.data.function_id == "mixed"'}],
    }  # fmt: skip


# -- bad input at decoration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "where"),
    [
        (tarry.Trigger("app/x", if_exp="event.data.n >"), "trigger.if_exp"),
        (tarry.Trigger("app/x", if_exp="async.data.n == 1"), "trigger.if_exp"),
        (tarry.Trigger("app/x", if_exp="other.n == 1"), "trigger.if_exp"),
        (tarry.Trigger("app/x", if_exp=""), "trigger.if_exp"),
        (["app/y", tarry.Trigger("app/x", if_exp="event.data.n >")], "trigger[1].if_exp"),
        ([tarry.Trigger("app/x", if_exp="event.data.n == 1"), tarry.Trigger("app/*", if_exp="foo")],
         "trigger[1].if_exp"),
    ],
    ids=["does-not-parse", "names-async", "names-another-variable", "empty", "in-a-list", "second-filter"],
)  # fmt: skip
def test_a_bad_filter_expression_is_refused_at_decoration(app: tarry.Tarry, trigger: Any, where: str) -> None:
    echo(app, "before", "app/x")
    with pytest.raises(tarry.ExpressionError, match=rf"in {re.escape(where)}: "):
        echo(app, "filtered", trigger)
    assert app.functions == ["before"], "nothing registered"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tarry.Trigger("", if_exp="true"), "non-empty string"),
        (lambda: tarry.Trigger("a*b", if_exp="true"), "only at the end"),
        (lambda: tarry.Trigger(3, if_exp="true"), "non-empty string"),  # type: ignore[arg-type]
        (lambda: tarry.Trigger("app/x", if_exp=None), "Trigger.if_exp"),  # type: ignore[arg-type]
    ],
    ids=["empty-name", "star-inside", "not-a-string", "if-exp-not-a-string"],
)
def test_a_bad_trigger_is_refused_when_built(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_filter_needs_its_if_exp_by_keyword() -> None:
    with pytest.raises(TypeError):
        tarry.Trigger("app/x", "event.data.n == 1")  # type: ignore[misc]
    with pytest.raises(TypeError):
        tarry.Trigger("app/x")  # type: ignore[call-arg]


def test_each_trigger_is_described_as_the_functions_api_shows_it(app: tarry.Tarry) -> None:
    async def on_failure(ctx: tarry.Context) -> None: ...

    echo(app, "mixed", ["app/*", "app/x", tarry.Trigger("shop/*", if_exp="event.data.vip"),
                        tarry.Trigger("shop/order", if_exp="event.data.total > 100")], on_failure=on_failure)  # fmt: skip
    specs = app._registry.functions
    assert specs["mixed"].trigger.describe() == [  # names, then prefixes, each in the order written
        {"event": "app/x"},
        {"event": "shop/order", "if_exp": "event.data.total > 100"},
        {"event": "app/*"},
        {"event": "shop/*", "if_exp": "event.data.vip"},
    ]
    assert specs["mixed"].on_failure == "mixed-failure"
    assert specs["mixed-failure"].trigger.describe() == [
        {"event": "tarry/function.failed", "if_exp": 'event.data.function_id == "mixed"'}
    ]


async def test_a_failure_handlers_filter_as_shown_selects_the_events_it_runs_for(app: tarry.Tarry) -> None:
    """The handler's filter is a Python test; the CEL it is shown as takes the same events."""

    async def on_failure(ctx: tarry.Context) -> str:
        return str(ctx.event.data["run_id"])

    @app.function(trigger="app/x", id='odd "id"', on_failure=on_failure)
    async def handled(ctx: tarry.Context) -> None:
        raise RuntimeError("boom")

    @app.function(trigger="app/x")
    async def other(ctx: tarry.Context) -> None:
        raise RuntimeError("boom")

    [shown] = app._registry.functions['odd "id"-failure'].trigger.describe()
    echo(app, "as-shown", tarry.Trigger(shown["event"], if_exp=shown["if_exp"]))
    async with app:
        await app.send(tarry.Event("app/x"))
        await app.idle(timeout=LIMIT)
        [by_handler] = await app.list_runs(function_id='odd "id"-failure')
        [by_filter] = await app.list_runs(function_id="as-shown")
        assert by_filter.event.id == by_handler.event.id
