"""Flow-control options (API §9) refused at construction or decoration, naming the option and the rule.

A refused function is never registered; the good forms (every duration form, limits at their bounds)
register.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import tarry


def make() -> tarry.Tarry:
    return tarry.Tarry("t", database_url="sqlite:///:memory:")


async def noop(ctx: tarry.Context) -> None:
    return None


def refused(options: dict[str, Any], error: type[Exception], *parts: str) -> None:
    """Decorating with ``options`` raises ``error`` whose message holds every part, and registers nothing."""
    app = make()
    with pytest.raises(error) as info:
        app.function(trigger="a", **options)(noop)
    for part in parts:
        assert part in str(info.value), f"{part!r} not in {str(info.value)!r}"
    assert app.functions == []


def registers(**options: Any) -> None:
    app = make()
    app.function(trigger="a", **options)(noop)
    assert app.functions == ["noop"]


# -- each option checks its own arguments, when built ------------------------------------------


def by_limit(name: str, value: Any) -> Callable[[], object]:
    builders: dict[str, Callable[[], object]] = {
        "Concurrency.limit": lambda: tarry.Concurrency(limit=value),
        "Throttle.limit": lambda: tarry.Throttle(limit=value, period="1m"),
        "RateLimit.limit": lambda: tarry.RateLimit(limit=value, period="1m"),
        "Batch.max_size": lambda: tarry.Batch(max_size=value, timeout="1m"),
    }
    return builders[name]


LIMITS = ["Concurrency.limit", "Throttle.limit", "RateLimit.limit", "Batch.max_size"]


@pytest.mark.parametrize("name", LIMITS)
@pytest.mark.parametrize("value", [0, -1, True, False, 1.0, 2.5, "3", None])
def test_a_limit_is_an_int_of_at_least_one_not_a_bool(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"invalid {re.escape(name)} {re.escape(repr(value))}: an int") as info:
        by_limit(name, value)()
    assert "not a bool" in str(info.value)
    assert ("from 1 to 1,000" if name == "Batch.max_size" else ">= 1") in str(info.value)


@pytest.mark.parametrize("value", [1001, 10_000])
def test_a_batch_holds_at_most_a_thousand_events(value: int) -> None:
    with pytest.raises(ValueError, match=rf"invalid Batch.max_size {value}: an int from 1 to 1,000"):
        tarry.Batch(max_size=value, timeout="1m")


def by_period(name: str, value: Any) -> Callable[[], object]:
    builders: dict[str, Callable[[], object]] = {
        "Throttle.period": lambda: tarry.Throttle(limit=1, period=value),
        "RateLimit.period": lambda: tarry.RateLimit(limit=1, period=value),
        "Debounce.period": lambda: tarry.Debounce(period=value),
        "Debounce.timeout": lambda: tarry.Debounce(period=1, timeout=value),
        "Batch.timeout": lambda: tarry.Batch(max_size=2, timeout=value),
        "Timeouts.start": lambda: tarry.Timeouts(start=value),
        "Timeouts.finish": lambda: tarry.Timeouts(finish=value),
    }
    return builders[name]


PERIODS = ["Throttle.period", "RateLimit.period", "Debounce.period", "Debounce.timeout", "Batch.timeout",
           "Timeouts.start", "Timeouts.finish"]  # fmt: skip


@pytest.mark.parametrize("name", PERIODS)
@pytest.mark.parametrize("value", [0, 0.5, 0.999, "500ms", "0s", timedelta(milliseconds=999)])
def test_a_period_is_at_least_one_second(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"invalid {re.escape(name)} .*: at least 1 s"):
        by_period(name, value)()


@pytest.mark.parametrize("name", PERIODS)
@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("soon", "use a number with a unit"),
        ("1 month", "use a number with a unit"),
        ("", "use a number with a unit"),
        ([60], "expected seconds, a timedelta or a text"),
        (True, "expected seconds, a timedelta or a text"),
        (float("inf"), "finite number of seconds"),
        (-5, "must not be negative"),
        ("366d", "at most 365 days"),
    ],
)
def test_a_period_is_a_duration(name: str, value: Any, rule: str) -> None:
    with pytest.raises(ValueError, match=rf"invalid {re.escape(name)} ") as info:
        by_period(name, value)()
    assert rule in str(info.value)


def test_a_batch_timeout_is_required() -> None:
    with pytest.raises(ValueError, match=r"invalid Batch\.timeout None: a duration is required"):
        tarry.Batch(max_size=10)
    with pytest.raises(ValueError, match=r"invalid Batch\.timeout None: a duration is required"):
        tarry.Batch(max_size=10, timeout=None)


@pytest.mark.parametrize(("period", "timeout"), [("1m", "30s"), (10, 9), ("1h", "59m59s")])
def test_a_debounce_timeout_is_at_least_its_period(period: Any, timeout: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid Debounce.timeout .*: at least the period"):
        tarry.Debounce(period=period, timeout=timeout)


@pytest.mark.parametrize("scope", ["fn", "env", "account", "App", "", None])
def test_a_concurrency_scope_is_function_or_app(scope: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid Concurrency.scope .*: 'function' or 'app'"):
        tarry.Concurrency(limit=1, key="event.data.a", scope=scope)


@pytest.mark.parametrize("mode", ["replace", "Skip", "", None, 1])
def test_a_singleton_mode_is_skip_or_cancel(mode: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid Singleton.mode .*: 'skip' or 'cancel'"):
        tarry.Singleton(mode=mode)


KEY_TEXTS: list[tuple[str, Callable[[Any], object]]] = [
    ("Concurrency.key", lambda k: tarry.Concurrency(limit=1, key=k)),
    ("Throttle.key", lambda k: tarry.Throttle(limit=1, period=1, key=k)),
    ("RateLimit.key", lambda k: tarry.RateLimit(limit=1, period=1, key=k)),
    ("Debounce.key", lambda k: tarry.Debounce(period=1, key=k)),
    ("Batch.key", lambda k: tarry.Batch(max_size=2, timeout=1, key=k)),
    ("Singleton.key", lambda k: tarry.Singleton(key=k)),
    ("Priority.run", lambda k: tarry.Priority(run=k)),
]


@pytest.mark.parametrize(("name", "build"), KEY_TEXTS, ids=[name for name, _ in KEY_TEXTS])
@pytest.mark.parametrize("text", [3, 1.5, True, ["event.data.a"], {"a": 1}])
def test_a_key_text_is_a_string(name: str, build: Callable[[Any], object], text: Any) -> None:
    with pytest.raises(ValueError, match=rf"invalid {re.escape(name)} .*: a CEL expression over event, as a string"):
        build(text)


def test_a_priority_needs_its_expression() -> None:
    with pytest.raises(ValueError, match=r"invalid Priority\.run None: a CEL expression"):
        tarry.Priority(run=None)  # type: ignore[arg-type]


# -- @app.function compiles every expression ---------------------------------------------------


KEYED: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
    ("concurrency.key", lambda k: {"concurrency": tarry.Concurrency(limit=1, key=k)}),
    ("concurrency[1].key", lambda k: {"concurrency": [tarry.Concurrency(limit=1), tarry.Concurrency(limit=1, key=k)]}),
    ("throttle.key", lambda k: {"throttle": tarry.Throttle(limit=1, period="1m", key=k)}),
    ("rate_limit.key", lambda k: {"rate_limit": tarry.RateLimit(limit=1, period="1m", key=k)}),
    ("debounce.key", lambda k: {"debounce": tarry.Debounce(period="1m", key=k)}),
    ("batch.key", lambda k: {"batch": tarry.Batch(max_size=2, timeout="1m", key=k)}),
    ("singleton.key", lambda k: {"singleton": tarry.Singleton(key=k)}),
    ("priority.run", lambda k: {"priority": tarry.Priority(run=k)}),
    ("idempotency", lambda k: {"idempotency": k}),
]


@pytest.mark.parametrize(("where", "options"), KEYED, ids=[where for where, _ in KEYED])
@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("async.x", "names only event"),
        ("async.data.userId == event.data.userId", "names only event"),
        ("foo.bar", "undeclared reference to 'foo.bar'"),
        ("data.userId", "undeclared reference to 'data.userId'"),
        ("event.data.(", "Syntax error"),
        ("event.data.x +", "Syntax error"),
        ("", "non-empty"),
    ],
)
def test_an_expression_that_is_not_cel_over_event_is_refused(
    where: str, options: Callable[[str], dict[str, Any]], text: str, rule: str
) -> None:
    refused(options(text), tarry.ExpressionError, f"invalid expression {text!r} in {where}:", rule)


@pytest.mark.parametrize(("where", "options"), KEYED, ids=[where for where, _ in KEYED])
def test_an_expression_error_is_a_value_error(where: str, options: Callable[[str], dict[str, Any]]) -> None:
    refused(options("async.x"), ValueError, where)


def test_the_idempotency_expression_is_a_string() -> None:
    refused({"idempotency": 3}, ValueError, "invalid idempotency 3: a CEL expression over event, as a string")


# -- @app.function checks the options as a whole -----------------------------------------------


def test_at_most_two_concurrency_limits() -> None:
    three = [tarry.Concurrency(limit=1, key=f"event.data.k{i}") for i in range(3)]
    refused({"concurrency": three}, ValueError, "invalid concurrency", "a list of one or two")


@pytest.mark.parametrize("empty", [[], ()])
def test_an_empty_concurrency_list_is_refused(empty: Any) -> None:
    refused({"concurrency": empty}, ValueError, "invalid concurrency", "a list of one or two")


@pytest.mark.parametrize(
    ("limits", "scope", "key"),
    [
        ([tarry.Concurrency(limit=1, key="event.data.a"), tarry.Concurrency(limit=5, key="event.data.a")],
         "'function'", "'event.data.a'"),
        ([tarry.Concurrency(limit=1), tarry.Concurrency(limit=2)], "'function'", "None"),
        ([tarry.Concurrency(limit=1, key='"openai"', scope="app"), tarry.Concurrency(limit=2, key='"openai"', scope="app")],
         "'app'", "'\"openai\"'"),
    ],
)  # fmt: skip
def test_two_concurrency_limits_with_one_scope_and_key_are_refused(
    limits: list[tarry.Concurrency], scope: str, key: str
) -> None:
    refused({"concurrency": limits}, ValueError, "invalid concurrency: two limits", f"scope {scope}", f"key {key}")


def test_one_key_in_two_scopes_is_two_limits() -> None:
    registers(concurrency=[tarry.Concurrency(limit=1, key='"openai"', scope="app"),
                           tarry.Concurrency(limit=2, key='"openai"')])  # fmt: skip


@pytest.mark.parametrize(
    "concurrency",
    [tarry.Concurrency(limit=3, scope="app"), [tarry.Concurrency(limit=3, key="event.data.a"), tarry.Concurrency(limit=1, scope="app")]],
)  # fmt: skip
def test_an_app_scope_needs_a_key(concurrency: Any) -> None:
    refused({"concurrency": concurrency}, ValueError, "invalid concurrency", "scope='app' needs a key")


@pytest.mark.parametrize(
    ("option", "value", "use"),
    [
        ("concurrency", {"limit": 2}, "tarry.Concurrency"),
        ("concurrency", 2, "tarry.Concurrency"),
        ("concurrency", [{"limit": 2}], "tarry.Concurrency"),
        ("concurrency", [tarry.Concurrency(limit=2), "event.data.a"], "tarry.Concurrency"),
        ("throttle", {"limit": 1, "period": "1m"}, "tarry.Throttle"),
        ("throttle", tarry.RateLimit(limit=1, period="1m"), "tarry.Throttle"),
        ("rate_limit", {"limit": 1, "period": "1m"}, "tarry.RateLimit"),
        ("rate_limit", tarry.Throttle(limit=1, period="1m"), "tarry.RateLimit"),
        ("debounce", {"period": "1m"}, "tarry.Debounce"),
        ("debounce", "1m", "tarry.Debounce"),
        ("batch", {"max_size": 10, "timeout": "1m"}, "tarry.Batch"),
        ("batch", 10, "tarry.Batch"),
        ("priority", {"run": "120"}, "tarry.Priority"),
        ("priority", "event.data.p", "tarry.Priority"),
        ("singleton", {"key": "event.data.a"}, "tarry.Singleton"),
        ("singleton", True, "tarry.Singleton"),
        ("timeouts", {"start": "10m"}, "tarry.Timeouts"),
        ("timeouts", "10m", "tarry.Timeouts"),
    ],
)
def test_an_option_is_its_own_class_not_a_dict_or_other_object(option: str, value: Any, use: str) -> None:
    refused({option: value}, ValueError, f"invalid {option}", use)


@pytest.mark.parametrize(
    ("other", "value"),
    [
        ("debounce", tarry.Debounce(period="1m")),
        ("rate_limit", tarry.RateLimit(limit=10, period="1m")),
        ("idempotency", "event.data.orderId"),
        ("singleton", tarry.Singleton()),
        ("cancel_on", [tarry.CancelOn(event="app/account.deleted", match="data.userId")]),
    ],
)
def test_a_batch_cannot_be_combined_with_an_option_that_decides_per_event(other: str, value: Any) -> None:
    options = {"batch": tarry.Batch(max_size=10, timeout="1m"), other: value}
    refused(options, ValueError, "invalid batch: it cannot be combined with", other)


def test_a_batch_names_every_option_it_clashes_with() -> None:
    options = {"batch": tarry.Batch(max_size=10, timeout="1m"), "debounce": tarry.Debounce(period="1m"),
               "singleton": tarry.Singleton()}  # fmt: skip
    refused(options, ValueError, "debounce", "singleton")


def test_a_refused_option_leaves_the_other_functions_as_they_were() -> None:
    app = make()
    app.function(trigger="a", id="kept", throttle=tarry.Throttle(limit=1, period="1m"))(noop)
    with pytest.raises(ValueError):
        app.function(trigger="a", concurrency=[])(noop)
    with pytest.raises(tarry.ExpressionError):
        app.function(trigger="a", throttle=tarry.Throttle(limit=1, period="1m", key="async.x"))(noop)
    app.function(trigger="a")(noop)  # the id is still free
    assert app.functions == ["kept", "noop"]


# -- the good forms ------------------------------------------------------------------------


@pytest.mark.parametrize("period", [1, 1.0, 1.5, 60, 90.25, timedelta(seconds=1), timedelta(minutes=5), "1s", "1m",
                                    "1h30m", "2 hours", "1 week", "365d", timedelta(days=365)])  # fmt: skip
def test_every_duration_form_is_a_period(period: Any) -> None:
    registers(
        throttle=tarry.Throttle(limit=1, period=period),
        rate_limit=tarry.RateLimit(limit=1, period=period),
        timeouts=tarry.Timeouts(start=period, finish=period),
    )
    registers(debounce=tarry.Debounce(period=period, timeout=period))
    registers(batch=tarry.Batch(max_size=10, timeout=period))


@pytest.mark.parametrize("limit", [1, 2, 1000, 10**6])
def test_limits_from_one(limit: int) -> None:
    registers(
        concurrency=tarry.Concurrency(limit=limit),
        throttle=tarry.Throttle(limit=limit, period="1m"),
        rate_limit=tarry.RateLimit(limit=limit, period="1m"),
    )


@pytest.mark.parametrize("size", [1, 1000])
def test_a_batch_of_one_to_a_thousand(size: int) -> None:
    registers(batch=tarry.Batch(max_size=size, timeout="1m", key="event.data.customerId"))


def test_a_debounce_timeout_may_equal_its_period() -> None:
    registers(debounce=tarry.Debounce(period="1m", timeout=60, key="event.data.contactId"))


def test_every_option_at_once() -> None:
    registers(
        concurrency=[tarry.Concurrency(limit=2, key="event.data.customerId"),
                     tarry.Concurrency(limit=10, key='"crm-api"', scope="app")],
        throttle=tarry.Throttle(limit=10, period="1m", key="event.data.customerId"),
        rate_limit=tarry.RateLimit(limit=100, period="1h"),
        debounce=tarry.Debounce(period="5s", key="event.data.contactId", timeout="1m"),
        priority=tarry.Priority(run="event.data.plan == 'enterprise' ? 120 : 0"),
        idempotency="event.data.requestId",
        singleton=tarry.Singleton(key="event.data.contactId", mode="cancel"),
        timeouts=tarry.Timeouts(start="10m", finish="1h"),
    )  # fmt: skip


@pytest.mark.parametrize(
    "key",
    ["event.data.userId", "event.name", "event.id", "event.ts", "event.key", "event.v", '"openai"',
     "event.data.a + '/' + event.data.b", "event.data.n > 3", "has(event.data.x) ? event.data.x : 'none'"],
)  # fmt: skip
def test_a_key_may_be_any_cel_over_event(key: str) -> None:
    registers(concurrency=tarry.Concurrency(limit=1, key=key), singleton=tarry.Singleton(key=key))


def test_concurrency_takes_one_limit_or_a_list_of_one_or_two() -> None:
    registers(concurrency=[tarry.Concurrency(limit=1)])
    registers(concurrency=(tarry.Concurrency(limit=1), tarry.Concurrency(limit=4, key="event.data.a")))
    registers(concurrency=[tarry.Concurrency(limit=1, key="event.data.a", scope="app"), tarry.Concurrency(limit=3)])


@pytest.mark.parametrize("mode", ["skip", "cancel"])
def test_a_singleton_skips_or_cancels(mode: str) -> None:
    registers(singleton=tarry.Singleton(mode=mode))
    registers(singleton=tarry.Singleton(key="event.data.userId", mode=mode))
