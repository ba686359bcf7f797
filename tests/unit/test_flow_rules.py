"""Flow-control options are checked when built, and as a whole at decoration (API §9, Rules)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import tarry


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: tarry.Concurrency(limit=0), "Concurrency.limit"),
        (lambda: tarry.Concurrency(limit=True), "Concurrency.limit"),
        (lambda: tarry.Concurrency(limit=1.5), "Concurrency.limit"),
        (lambda: tarry.Concurrency(limit=1, scope="global"), "Concurrency.scope"),
        (lambda: tarry.Concurrency(limit=1, key=5), "Concurrency.key"),
        (lambda: tarry.Throttle(limit=0, period="1m"), "Throttle.limit"),
        (lambda: tarry.Throttle(limit=1, period="500ms"), "Throttle.period"),
        (lambda: tarry.Throttle(limit=1, period=0.5), "Throttle.period"),
        (lambda: tarry.Throttle(limit=1, period="366d"), "Throttle.period"),
        (lambda: tarry.Throttle(limit=1, period="1 month"), "Throttle.period"),
        (lambda: tarry.RateLimit(limit=False, period="1m"), "RateLimit.limit"),
        (lambda: tarry.RateLimit(limit=1, period="0s"), "RateLimit.period"),
        (lambda: tarry.Debounce(period="999ms"), "Debounce.period"),
        (lambda: tarry.Debounce(period="1m", timeout="30s"), "Debounce.timeout"),
        (lambda: tarry.Batch(max_size=0, timeout="1m"), "Batch.max_size"),
        (lambda: tarry.Batch(max_size=1001, timeout="1m"), "Batch.max_size"),
        (lambda: tarry.Batch(max_size=10, timeout=None), "Batch.timeout"),
        (lambda: tarry.Batch(max_size=10, timeout="400d"), "Batch.timeout"),
        (lambda: tarry.Priority(run=5), "Priority.run"),
        (lambda: tarry.Singleton(mode="replace"), "Singleton.mode"),
        (lambda: tarry.Singleton(key=["a"]), "Singleton.key"),
        (lambda: tarry.Timeouts(start="0.5s"), "Timeouts.start"),
        (lambda: tarry.Timeouts(finish="2 years"), "Timeouts.finish"),
    ],
)
def test_each_option_checks_its_own_arguments(build: Callable[[], object], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: tarry.Concurrency(limit=1, key="event.data.user", scope="app"),
        lambda: tarry.Throttle(limit=1, period=1),
        lambda: tarry.Throttle(limit=1, period="365d"),
        lambda: tarry.RateLimit(limit=10, period="1h", key="event.data.user"),
        lambda: tarry.Debounce(period="1m", timeout="1m"),
        lambda: tarry.Batch(max_size=1000, timeout="1s"),
        lambda: tarry.Singleton(mode="cancel"),
        lambda: tarry.Timeouts(start="10m", finish="1h"),
    ],
)
def test_options_within_the_rules_are_accepted(build: Callable[[], object]) -> None:
    build()


@pytest.mark.parametrize(
    "flow",
    [
        {"concurrency": []},
        {"concurrency": [tarry.Concurrency(limit=1, key="event.data.a"), tarry.Concurrency(limit=1),
                         tarry.Concurrency(limit=1, key="event.data.b")]},
        {"concurrency": [tarry.Concurrency(limit=1, key="event.data.a"), tarry.Concurrency(limit=2, key="event.data.a")]},
        {"concurrency": tarry.Concurrency(limit=1, scope="app")},
        {"concurrency": {"limit": 1}},
        {"throttle": {"limit": 1, "period": "1m"}},
        {"rate_limit": tarry.Throttle(limit=1, period="1m")},
        {"idempotency": 5},
        {"batch": tarry.Batch(max_size=2, timeout="1m"), "debounce": tarry.Debounce(period="1m")},
        {"batch": tarry.Batch(max_size=2, timeout="1m"), "rate_limit": tarry.RateLimit(limit=1, period="1m")},
        {"batch": tarry.Batch(max_size=2, timeout="1m"), "idempotency": "event.data.id"},
        {"batch": tarry.Batch(max_size=2, timeout="1m"), "singleton": tarry.Singleton()},
        {"batch": tarry.Batch(max_size=2, timeout="1m"), "cancel_on": [tarry.CancelOn(event="x/stop")]},
    ],
)  # fmt: skip
def test_at_decoration_the_whole_is_checked_and_nothing_is_registered(flow: dict[str, Any]) -> None:
    app = tarry.Tarry("rules", database_url="sqlite:///:memory:")
    with pytest.raises(ValueError, match=r"concurrency|throttle|rate_limit|idempotency|batch"):

        @app.function(trigger="x/run", **flow)
        async def fn(ctx: tarry.Context) -> None: ...

    assert app.functions == []


def test_two_limits_with_different_scopes_or_keys_are_accepted() -> None:
    app = tarry.Tarry("rules", database_url="sqlite:///:memory:")

    @app.function(trigger="x/run", concurrency=[tarry.Concurrency(limit=5),
                                                tarry.Concurrency(limit=1, key="event.data.user")])  # fmt: skip
    async def fn(ctx: tarry.Context) -> None: ...

    @app.function(trigger="x/run", concurrency=[tarry.Concurrency(limit=5, key='"db"'),
                                                tarry.Concurrency(limit=1, key='"db"', scope="app")])  # fmt: skip
    async def other(ctx: tarry.Context) -> None: ...

    assert app.functions == ["fn", "other"]


@pytest.mark.parametrize(
    ("flow", "named"),
    [
        ({"concurrency": tarry.Concurrency(limit=1, key="event.data.(")}, "concurrency.key"),
        ({"throttle": tarry.Throttle(limit=1, period="1m", key="nope ==")}, "throttle.key"),
        ({"rate_limit": tarry.RateLimit(limit=1, period="1m", key="event.data.a +")}, "rate_limit.key"),
        ({"debounce": tarry.Debounce(period="1m", key="async.data.a")}, "debounce.key"),
        ({"batch": tarry.Batch(max_size=2, timeout="1m", key="unknown.name")}, "batch.key"),
        ({"priority": tarry.Priority(run="event.data.p >")}, "priority.run"),
        ({"idempotency": "event.data.id =="}, "idempotency"),
        ({"singleton": tarry.Singleton(key="((")}, "singleton.key"),
    ],
)
def test_a_bad_expression_is_refused_naming_the_option(flow: dict[str, Any], named: str) -> None:
    app = tarry.Tarry("rules", database_url="sqlite:///:memory:")
    with pytest.raises(tarry.ExpressionError, match=named.replace(".", r"\.")):

        @app.function(trigger="x/run", **flow)
        async def fn(ctx: tarry.Context) -> None: ...

    assert app.functions == []
