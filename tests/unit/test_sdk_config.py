"""A sync of an Inngest SDK app read into Tarry's function specs: each option mapped, or refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from tarry import Batch, Concurrency, Cron, Debounce, Priority, RateLimit, Singleton, Throttle, Timeouts
from tarry._function import SdkTarget
from tarry._sdk.config import SyncRefused, read_sync

URL = "http://127.0.0.1:8000/api/inngest"


def body(**function: Any) -> dict[str, Any]:
    fn = {"id": "shop-f", "name": "f", "triggers": [{"event": "shop/go"}],
          "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http", "url": f"{URL}?fnId=shop-f&stepId=step"}}},
          **function}  # fmt: skip
    return {"appname": "shop", "url": URL, "v": "0.1", "deploy_type": "ping", "sdk": "py:v0.5.19",
            "framework": "fast_api", "capabilities": {"in_band_sync": "v1"}, "functions": [fn]}  # fmt: skip


def driver(target: SdkTarget) -> Any:
    async def fn(ctx: object) -> None:
        return None

    return fn


def test_every_option_of_the_sdk_becomes_tarrys_own() -> None:
    app = read_sync(body(
        triggers=[{"event": "shop/go", "expression": "event.data.vip == true"}, {"event": "shop/again"}],
        steps={"step": {"id": "step", "name": "step", "retries": {"attempts": 7},
                        "runtime": {"type": "http", "url": f"{URL}?fnId=shop-f&stepId=step"}}},
        cancel=[{"event": "shop/stop", "if": "async.data.id == event.data.id", "timeout": "1h"}],
        concurrency=[{"limit": 2, "key": "event.data.user", "scope": "fn"}, {"limit": 5, "key": "event.data.team", "scope": "env"}],
        throttle={"limit": 10, "period": "1m", "key": "event.data.user", "burst": 1},
        rateLimit={"limit": 3, "period": "1h", "key": "event.data.user"},
        debounce={"period": "5s", "key": "event.data.user", "timeout": "1m"},
        priority={"run": "event.data.vip ? 60 : 0"},
        idempotency="event.data.order",
        timeouts={"start": "10s", "finish": "1h"},
    ), driver)  # fmt: skip
    [spec] = app.specs
    assert (spec.id, spec.retries, spec.sdk) == ("shop-f", 7, SdkTarget("shop", f"{URL}?fnId=shop-f&stepId=step"))
    assert spec.trigger.describe() == [
        {"event": "shop/go", "if_exp": "event.data.vip == true"},
        {"event": "shop/again"},
    ]
    [cancel] = spec.cancel_on
    assert (cancel.event, cancel.if_exp, cancel.timeout) == ("shop/stop", "async.data.id == event.data.id", "1h")
    assert spec.options["concurrency"] == [Concurrency(2, key="event.data.user"),
                                           Concurrency(5, key="event.data.team", scope="app")]  # fmt: skip
    assert spec.options["throttle"] == Throttle(10, "1m", key="event.data.user")
    assert spec.options["rate_limit"] == RateLimit(3, "1h", key="event.data.user")
    assert spec.options["debounce"] == Debounce("5s", key="event.data.user", timeout="1m")
    assert spec.options["priority"] == Priority("event.data.vip ? 60 : 0")
    assert spec.options["idempotency"] == "event.data.order"
    assert spec.options["timeouts"] == Timeouts(start="10s", finish="1h")


def test_a_cron_trigger_keeps_its_zone() -> None:
    [spec] = read_sync(body(triggers=[{"cron": "TZ=Europe/Berlin 0 9 * * MON"}, {"cron": "*/5 * * * *"}]), driver).specs
    assert spec.trigger.crons == (Cron("0 9 * * MON", timezone="Europe/Berlin"), Cron("*/5 * * * *"))


def test_batches_and_singletons_are_mapped_too() -> None:
    [batched] = read_sync(body(batchEvents={"maxSize": 10, "timeout": "2s", "key": "event.data.user"}), driver).specs
    assert batched.options["batch"] == Batch(10, timeout="2s", key="event.data.user")
    [single] = read_sync(body(singleton={"key": "event.data.user", "mode": "cancel"}), driver).specs
    assert single.options["singleton"] == Singleton(key="event.data.user", mode="cancel")


def test_unset_retries_are_inngests_default_and_empty_lists_are_no_option() -> None:
    [spec] = read_sync(body(cancel=[], concurrency=[]), driver).specs
    assert (spec.retries, spec.cancel_on, spec.options) == (4, (), {})


@pytest.mark.parametrize(("function", "refusal"), [
    ({"concurrency": [{"limit": 1, "key": "event.data.a", "scope": "account"}]}, "concurrency[0].scope 'account' not supported"),
    ({"throttle": {"limit": 1, "period": "1m", "burst": 3}}, "throttle.burst 3 not supported by Tarry"),
    ({"batchEvents": {"maxSize": 5, "timeout": "1s", "if": "event.data.ok"}}, "batchEvents.if not supported by Tarry"),
    ({"triggers": [{"cron": "* * * * *", "jitter": "5m"}]}, "'jitter' not supported by Tarry"),
    ({"someFutureOption": {"x": 1}}, "option(s) 'someFutureOption' not supported by Tarry"),
    ({"steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "ws", "url": "wss://x/y"}}}}, "only 'http'"),
    ({"triggers": []}, "invalid triggers"),
    ({"concurrency": [{"limit": 0}]}, "Concurrency.limit"),
    ({"triggers": [{"event": "shop/go", "expression": "event.data.x =="}]}, "invalid expression"),
    ({"cancel": [{"event": "shop/stop", "timeout": "soon"}]}, "timeout"),
])  # fmt: skip
def test_an_option_tarry_does_not_run_refuses_the_sync_naming_the_function(function: dict[str, Any],
                                                                           refusal: str) -> None:  # fmt: skip
    with pytest.raises(SyncRefused) as refused:
        read_sync(body(**function), driver)
    assert str(refused.value).startswith("function 'shop-f': ")
    assert refusal in str(refused.value)


def test_two_functions_of_one_id_are_refused() -> None:
    sync = body()
    sync["functions"] *= 2
    with pytest.raises(SyncRefused, match="duplicate function id 'shop-f'"):
        read_sync(sync, driver)
