"""A sync of an Inngest SDK app, read into Tarry's own function specs — or refused, naming the option.

The SDK posts its functions to ``POST /fn/register`` in its own JSON form
(``inngest>=0.5,<0.6``). Each function becomes a ``FunctionSpec`` built by
``make_spec``, as ``@app.function`` builds one: its triggers, retries,
``cancel`` and flow control are Tarry's own, and its body is the SDK driver
(``tarry._sdk.driver``). Everything is checked before anything is stored: an
option Tarry does not run refuses the whole sync.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from tarry import _serde
from tarry._cron import Cron
from tarry._engine.waits import check_cancel_on
from tarry._errors import ExpressionError
from tarry._flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle, Timeouts
from tarry._function import CancelOn, FunctionSpec, SdkTarget, Trigger, make_spec

#: Inngest's default when a function sets no ``retries``: 4 retries, 5 attempts in all
DEFAULT_RETRIES = 4
#: the keys of a function's registration; any other one is an option Tarry does not run
_FUNCTION_KEYS = {"id", "name", "triggers", "steps", "cancel", "concurrency", "throttle", "rateLimit", "debounce",
                  "batchEvents", "priority", "idempotency", "singleton", "timeouts"}  # fmt: skip
_APP_KEYS = {"url", "v", "deploy_type", "sdk", "framework", "appname", "appVersion", "capabilities", "functions"}
_CRON_ZONE = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$")


class SyncRefused(ValueError):
    """A sync Tarry does not take; its message names the function, the option and the rule."""


class SdkApp:
    """One sync: the app's id, the URL its SDK serves, its functions as registered (JSON) and as specs."""

    def __init__(self, app_id: str, url: str, functions: list[dict[str, Any]], specs: list[FunctionSpec]) -> None:
        self.app_id = app_id
        self.url = url
        self.functions = functions
        self.specs = specs

    @property
    def functions_json(self) -> str:
        return _serde.dumps(self.functions)

    @property
    def digest(self) -> str:
        """What a sync that changes nothing has in common with the last one."""
        return hashlib.sha256(_serde.dumps({"url": self.url, "functions": self.functions}).encode()).hexdigest()


def read_sync(body: object, driver: Callable[[SdkTarget], Callable[..., Any]]) -> SdkApp:
    """The app a register request describes; ``SyncRefused`` naming what is wrong, for the whole sync."""
    if not isinstance(body, dict):
        raise SyncRefused("the sync must be a JSON object, as the Inngest SDK sends it")
    unknown = sorted(set(body) - _APP_KEYS)
    if unknown:
        raise SyncRefused(f"unknown field(s) of the sync: {', '.join(map(repr, unknown))}")
    app_id = body.get("appname")
    if not isinstance(app_id, str) or not app_id or len(app_id) > 200:
        raise SyncRefused(f"invalid appname {app_id!r}: the SDK app's id, a non-empty string")
    url = body.get("url")
    _check_url("url", url)
    assert isinstance(url, str)
    functions = body.get("functions")
    if not isinstance(functions, list) or not functions:
        raise SyncRefused("invalid functions: a non-empty list of the SDK's functions")
    return app_from_json(app_id, url, functions, driver)


def app_from_json(app_id: str, url: str, functions: list[Any], driver: Callable[[SdkTarget], Callable[..., Any]]
                  ) -> SdkApp:  # fmt: skip
    """The specs of ``functions`` as registered: at a sync, and again when a process loads the stored sync."""
    specs: list[FunctionSpec] = []
    for index, item in enumerate(functions):
        where = f"functions[{index}]"
        if not isinstance(item, dict):
            raise SyncRefused(f"invalid {where}: a JSON object")
        function_id = item.get("id")
        if isinstance(function_id, str):
            where = f"function {function_id[:300]!r}"
        try:
            specs.append(_spec(app_id, item, driver))
        except SyncRefused as exc:
            raise SyncRefused(f"{where}: {exc}") from None
        except (ValueError, TypeError, ExpressionError) as exc:
            raise SyncRefused(f"{where}: {exc}") from None
    ids = [spec.id for spec in specs]
    for i, function_id in enumerate(ids):
        if function_id in ids[:i]:
            raise SyncRefused(f"duplicate function id {function_id!r} in one sync")
    return SdkApp(app_id, url, functions, specs)


def _spec(app_id: str, item: dict[str, Any], driver: Callable[[SdkTarget], Callable[..., Any]]) -> FunctionSpec:
    unknown = sorted(set(item) - _FUNCTION_KEYS)
    if unknown:
        raise SyncRefused(f"option(s) {', '.join(map(repr, unknown))} not supported by Tarry")
    function_id = item.get("id")
    if not isinstance(function_id, str) or not function_id.startswith(f"{app_id}-") or len(function_id) > 256:
        raise SyncRefused(f"invalid id {function_id!r:.300}: the SDK's composite id '{app_id}-<function id>'")
    steps = item.get("steps")
    if not isinstance(steps, dict) or len(steps) != 1 or not isinstance(steps.get("step"), dict):
        raise SyncRefused("invalid steps: one step 'step' with its runtime, as the SDK registers it")
    step = steps["step"]
    runtime = step.get("runtime")
    if not isinstance(runtime, dict) or runtime.get("type") != "http":
        raise SyncRefused(f"runtime {runtime!r} not supported by Tarry: only 'http' (not Inngest Connect)")
    _check_url("steps.step.runtime.url", runtime.get("url"))
    retries_given = step.get("retries")
    retries = DEFAULT_RETRIES
    if retries_given is not None:
        attempts = retries_given.get("attempts") if isinstance(retries_given, dict) else None
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise SyncRefused(f"invalid retries {retries_given!r}: {{'attempts': <int>}}")
        retries = attempts
    target = SdkTarget(app_id, runtime["url"])
    flow = _flow(item)
    spec = make_spec(driver(target), _triggers(item.get("triggers")), function_id, retries, _cancel(item.get("cancel")),
                     flow)  # fmt: skip
    for cancel in spec.cancel_on:
        check_cancel_on(cancel)
    return replace(spec, sdk=target)


def _check_url(what: str, url: object) -> None:
    if not isinstance(url, str) or len(url) > 2000:
        raise SyncRefused(f"invalid {what} {url!r}: an http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SyncRefused(f"invalid {what} {url!r}: an http(s) URL")


def _triggers(triggers: object) -> list[str | Trigger | Cron]:
    if not isinstance(triggers, list) or not triggers:
        raise SyncRefused("invalid triggers: a non-empty list of {'event': ...} or {'cron': ...}")
    parsed: list[str | Trigger | Cron] = []
    for i, item in enumerate(triggers):
        if not isinstance(item, dict):
            raise SyncRefused(f"invalid triggers[{i}] {item!r}: an object")
        if "cron" in item:
            extra = sorted(set(item) - {"cron"})
            if extra:
                raise SyncRefused(f"triggers[{i}]: {', '.join(map(repr, extra))} not supported by Tarry")
            expression = item["cron"]
            if not isinstance(expression, str):
                raise SyncRefused(f"invalid triggers[{i}].cron {expression!r}: a cron expression")
            zone = _CRON_ZONE.match(expression.strip())
            parsed.append(Cron(zone.group(2), timezone=zone.group(1)) if zone else Cron(expression))
            continue
        extra = sorted(set(item) - {"event", "expression"})
        if extra or "event" not in item:
            raise SyncRefused(
                f"invalid triggers[{i}] {item!r}: {{'event': name}}, with an 'expression', or {{'cron': ...}}"
            )
        expression = item.get("expression")
        parsed.append(item["event"] if expression is None else Trigger(item["event"], if_exp=expression))
    return parsed


def _cancel(cancel: object) -> list[CancelOn] | None:
    if cancel is None:
        return None
    if not isinstance(cancel, list):
        raise SyncRefused(f"invalid cancel {cancel!r}: a list")
    items = []
    for i, item in enumerate(cancel):
        _only(f"cancel[{i}]", item, {"event", "if", "timeout"})
        items.append(CancelOn(item.get("event"), if_exp=item.get("if"), timeout=item.get("timeout")))
    return items


def _only(what: str, value: object, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SyncRefused(f"invalid {what} {value!r}: an object")
    extra = sorted(k for k, v in value.items() if k not in keys and v is not None)
    if extra:
        raise SyncRefused(f"{what}.{extra[0]} not supported by Tarry")
    return value


def _flow(item: dict[str, Any]) -> dict[str, Any]:
    """The flow-control options of §9 from the SDK's: each an option Tarry runs, or refused by name."""
    flow: dict[str, Any] = {}
    concurrency = item.get("concurrency")
    if concurrency:  # the SDK sends [] for none
        if not isinstance(concurrency, list):
            raise SyncRefused(f"invalid concurrency {concurrency!r}: a list")
        limits = []
        for i, entry in enumerate(concurrency):
            entry = _only(f"concurrency[{i}]", entry, {"limit", "key", "scope"})
            scope = entry.get("scope") or "fn"
            if scope == "account":
                raise SyncRefused(f"concurrency[{i}].scope 'account' not supported by Tarry: 'fn' or 'env'")
            limits.append(Concurrency(entry.get("limit"), key=entry.get("key"),  # type: ignore[arg-type]
                                      scope="function" if scope == "fn" else "app"))  # fmt: skip
        flow["concurrency"] = limits
    throttle = item.get("throttle")
    if throttle is not None:
        throttle = _only("throttle", throttle, {"limit", "period", "key", "burst"})
        if throttle.get("burst") not in (None, 1):
            raise SyncRefused(f"throttle.burst {throttle['burst']!r} not supported by Tarry: only 1")
        flow["throttle"] = Throttle(throttle.get("limit"), throttle.get("period"), key=throttle.get("key"))  # type: ignore[arg-type]
    rate_limit = item.get("rateLimit")
    if rate_limit is not None:
        rate_limit = _only("rateLimit", rate_limit, {"limit", "period", "key"})
        flow["rate_limit"] = RateLimit(rate_limit.get("limit"), rate_limit.get("period"), key=rate_limit.get("key"))  # type: ignore[arg-type]
    debounce = item.get("debounce")
    if debounce is not None:
        debounce = _only("debounce", debounce, {"period", "key", "timeout"})
        flow["debounce"] = Debounce(debounce.get("period"), key=debounce.get("key"), timeout=debounce.get("timeout"))
    batch = item.get("batchEvents")
    if batch is not None:
        batch = _only("batchEvents", batch, {"maxSize", "timeout", "key"})
        flow["batch"] = Batch(batch.get("maxSize"), timeout=batch.get("timeout"), key=batch.get("key"))  # type: ignore[arg-type]
    priority = item.get("priority")
    if priority is not None:
        flow["priority"] = Priority(_only("priority", priority, {"run"}).get("run"))  # type: ignore[arg-type]
    if item.get("idempotency") is not None:
        flow["idempotency"] = item["idempotency"]
    singleton = item.get("singleton")
    if singleton is not None:
        singleton = _only("singleton", singleton, {"key", "mode"})
        flow["singleton"] = Singleton(key=singleton.get("key"), mode=singleton.get("mode") or "skip")
    timeouts = item.get("timeouts")
    if timeouts is not None:
        timeouts = _only("timeouts", timeouts, {"start", "finish"})
        flow["timeouts"] = Timeouts(start=timeouts.get("start"), finish=timeouts.get("finish"))
    return flow
