"""What ``@app.function`` records: the function, its id, triggers, retries and cancel_on.

Triggers are checked here, once, at decoration; matching an event name to
functions is a dict lookup plus a short list of prefixes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from tarry._cron import Cron
from tarry._flow import (
    NO_FLOW,
    Filter,
    Flow,
    compile_filter,
    compile_flow,
    failed_run_filter,
    option_json,
    options_json,
)

MAX_RETRIES = 100
FAILED_EVENT = "tarry/function.failed"


@dataclass(frozen=True)
class CancelOn:
    """An event that cancels a run: ``event`` name, optionally matched on ``match``/``if_exp``."""

    event: str
    match: str | None = None
    if_exp: str | None = None
    timeout: Any = None


@dataclass(frozen=True)
class Wait:
    """One condition of ``wait_for_all`` or ``wait_for_any``, with the rules of ``wait_for_event``:
    an ``event`` name (or a list of names), ``match``, ``if_exp`` and ``key``; at least one of
    ``event`` and ``key``."""

    event: str | list[str] | None = None
    _: KW_ONLY
    match: str | None = None
    if_exp: str | None = None
    key: str | None = None


def _check_name(item: object) -> str:
    if not isinstance(item, str) or not item.strip() or len(item) > 256:
        raise ValueError(f"invalid trigger {item!r}: an event name is a non-empty string of at most 256 characters")
    if "*" in item[:-1]:
        raise ValueError(f"invalid trigger {item!r}: '*' is allowed only at the end of a name")
    return item


@dataclass(frozen=True)
class Trigger:
    """A filtered trigger: only events named ``name`` (a name, or a ``prefix*``) for which ``if_exp``
    (CEL over ``event``) holds start a run; one for which it fails to evaluate starts none."""

    name: str
    _: KW_ONLY
    if_exp: str

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.if_exp, str):
            raise ValueError(f"invalid Trigger.if_exp {self.if_exp!r}: a CEL expression over event, as a string")


@dataclass(frozen=True)
class Route:
    """One event name or ``prefix*`` a function starts on, with the filter it must pass (None: none)."""

    name: str
    filter: Filter | None = None

    @property
    def prefix(self) -> str | None:
        return self.name[:-1] if self.name.endswith("*") else None

    def describe(self) -> dict[str, str]:
        """As ``/api/v1/functions`` shows it: ``{"event": name}``, with ``"if_exp"`` for a filter."""
        return {"event": self.name} if self.filter is None else {"event": self.name, "if_exp": self.filter.if_exp}


@dataclass(frozen=True)
class Triggers:
    """What a function starts on, in the order written: event names and ``prefix*`` patterns, each maybe
    filtered (a ``Route``), and schedules (the same ``Cron`` twice is one schedule)."""

    items: tuple[Route | Cron, ...]

    @classmethod
    def parse(cls, trigger: object) -> Triggers:
        single = isinstance(trigger, str | Trigger | Cron)
        items = [trigger] if single else trigger
        if not isinstance(items, list | tuple) or not items:
            raise ValueError(
                f"invalid trigger {trigger!r}: use an event name, a list of names, a name ending in '*', "
                "tarry.Trigger(name, if_exp=...) or tarry.Cron(...)"
            )
        parsed: list[Route | Cron] = []
        for i, item in enumerate(items):
            if isinstance(item, Cron):
                if item not in parsed:
                    parsed.append(item)
            elif isinstance(item, Trigger):
                where = "trigger.if_exp" if single else f"trigger[{i}].if_exp"
                parsed.append(Route(item.name, compile_filter(item.if_exp, where)))
            else:
                parsed.append(Route(_check_name(item)))
        return cls(tuple(parsed))

    @property
    def routes(self) -> tuple[Route, ...]:
        """The event names and prefixes, each maybe filtered."""
        return tuple(item for item in self.items if isinstance(item, Route))

    @property
    def crons(self) -> tuple[Cron, ...]:
        return tuple(item for item in self.items if isinstance(item, Cron))

    def describe(self) -> list[dict[str, str]]:
        """Each trigger as ``/api/v1/functions`` shows it: ``{"event": name}`` (also ``"prefix*"``), with
        ``"if_exp"`` for a filter, then ``{"cron": ..., "timezone": ...}``; exact names first, then
        prefixes, then schedules, each in the order written."""
        routes = sorted(self.routes, key=lambda route: route.prefix is not None)  # stable: the order written
        return [*(route.describe() for route in routes),
                *({"cron": cron.expression, "timezone": cron.timezone} for cron in self.crons)]  # fmt: skip


@dataclass(frozen=True)
class SdkTarget:
    """Where a function served by an Inngest SDK is called: its app's id and the function's own URL
    (``...?fnId=<id>&stepId=step``, as the SDK registered it)."""

    app_id: str
    url: str


@dataclass(frozen=True)
class FunctionSpec:
    """A registered function; ``on_failure``: the id of its failure handler, ``handles``: for a failure
    handler, the id of the function whose failed runs it handles."""

    id: str
    fn: Callable[..., Any]
    trigger: Triggers
    retries: int
    cancel_on: tuple[CancelOn, ...]
    flow: Flow = NO_FLOW
    on_failure: str | None = None
    handles: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the flow-control options as given (those set)
    sdk: SdkTarget | None = None  # for a function served by an Inngest SDK: where to call it

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def describe(self) -> dict[str, Any]:
        """The function as JSON (``GET /api/v1/functions``, ``tarry functions``): its id, its triggers, its
        retries, and the options that are set, each as its constructor's arguments."""
        options = options_json(self.options)
        if self.cancel_on:
            options["cancel_on"] = [option_json(item) for item in self.cancel_on]
        if self.on_failure is not None:
            options["on_failure"] = self.on_failure
        described = {"id": self.id, "triggers": self.trigger.describe(), "retries": self.retries, "options": options}
        if self.sdk is not None:  # served by an Inngest SDK
            described["sdk"] = {"app_id": self.sdk.app_id, "url": self.sdk.url}
        return described


def make_spec(fn: Callable[..., Any], trigger: object, id: str | None, retries: int,  # noqa: A002
              cancel_on: list[CancelOn] | None, flow: dict[str, Any] | None = None,
              on_failure: object = None) -> FunctionSpec:  # fmt: skip
    if not callable(fn):
        raise TypeError(f"@app.function decorates a function, got {fn!r}")
    function_id = id if id is not None else fn.__name__.replace("_", "-")
    if not isinstance(function_id, str) or not function_id or len(function_id) > 256 or "\x00" in function_id:
        raise ValueError(
            f"invalid function id {function_id!r}: a non-empty string of at most 256 characters, without NUL"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"invalid retries {retries!r} for function {function_id!r}: an int from 0 to {MAX_RETRIES}")
    cancels = tuple(cancel_on or ())
    for item in cancels:
        if not isinstance(item, CancelOn):
            raise ValueError(f"invalid cancel_on item {item!r} for function {function_id!r}: use tarry.CancelOn(...)")
    if on_failure is not None and not callable(on_failure):
        raise ValueError(f"invalid on_failure {on_failure!r} for function {function_id!r}: a function (sync or async)")
    parsed = Triggers.parse(trigger)
    scheduled = bool(parsed.crons)
    compiled = compile_flow(function_id, cancel_on=bool(cancels), scheduled=scheduled, **flow) if flow else NO_FLOW
    handler = failure_id(function_id) if on_failure is not None else None
    return FunctionSpec(
        function_id, fn, parsed, retries, cancels, compiled, on_failure=handler, options=dict(flow or {})
    )


def failure_id(function_id: str) -> str:
    return f"{function_id}-failure"


def failure_spec(spec: FunctionSpec, handler: Callable[..., Any]) -> FunctionSpec:
    """The failure handler of ``spec``: a function of its own that starts on each ``tarry/function.failed``
    event of ``spec``'s runs, with its retries and none of its flow control or cancel_on."""
    routes = (Route(FAILED_EVENT, failed_run_filter(spec.id)),)
    return FunctionSpec(failure_id(spec.id), handler, Triggers(routes), spec.retries, (), handles=spec.id)


class Registry:
    """The functions of one app, and the routing of event names to them.

    Unfiltered routes are a dict of names plus a short list of prefixes, as they were before filters
    existed; the filtered ones are kept apart, so that an app without filters never looks at them."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionSpec] = {}
        self.gated = False  # whether a function's runs start only as its limits allow
        self._by_name: dict[str, list[str]] = {}
        self._prefixed: list[tuple[str, str]] = []
        self._filtered_by_name: dict[str, list[tuple[str, Filter]]] = {}
        self._filtered_prefixed: list[tuple[str, str, Filter]] = []

    def add(self, *specs: FunctionSpec) -> None:
        """Register ``specs`` (a function and its failure handler) together, or none of them."""
        ids = [spec.id for spec in specs]
        for i, function_id in enumerate(ids):
            if function_id in self.functions or function_id in ids[:i]:
                raise ValueError(f"duplicate function id {function_id!r}: two functions of one app need different ids")
        for spec in specs:
            self._add(spec)

    def check_sdk_app(self, app_id: str, specs: list[FunctionSpec]) -> list[FunctionSpec]:
        """The functions that stay beside ``specs`` as the SDK app ``app_id``'s; ``ValueError`` naming a
        function id one of them has (of the Tarry app, or of another SDK app)."""
        kept = [spec for spec in self.functions.values() if spec.sdk is None or spec.sdk.app_id != app_id]
        taken = {spec.id: spec for spec in kept}
        for spec in specs:
            other = taken.get(spec.id)
            if other is not None:
                owner = "the Tarry app" if other.sdk is None else f"the SDK app {other.sdk.app_id!r}"
                raise ValueError(f"function {spec.id!r}: a function of {owner} has this id already")
        return kept

    def replace_sdk_app(self, app_id: str, specs: list[FunctionSpec]) -> None:
        """Make ``specs`` the functions of the SDK app ``app_id`` (its last sync), in place of those it had;
        ``ValueError`` as ``check_sdk_app`` says, and nothing changed."""
        kept = self.check_sdk_app(app_id, specs)
        self.functions, self.gated = {}, False
        self._by_name, self._prefixed, self._filtered_by_name, self._filtered_prefixed = {}, [], {}, []
        for spec in [*kept, *specs]:
            self._add(spec)

    def _add(self, spec: FunctionSpec) -> None:
        self.functions[spec.id] = spec
        self.gated = self.gated or spec.flow.gated
        for route in spec.trigger.routes:
            prefix = route.prefix
            if route.filter is not None:
                if prefix is None:
                    self._filtered_by_name.setdefault(route.name, []).append((spec.id, route.filter))
                else:
                    self._filtered_prefixed.append((prefix, spec.id, route.filter))
            elif prefix is None:
                self._by_name.setdefault(route.name, []).append(spec.id)
            else:
                self._prefixed.append((prefix, spec.id))

    def function_id(self, function: object) -> str:
        """The id of a registered function, given the function itself or its id."""
        if isinstance(function, str):
            if function in self.functions:
                return function
        else:
            for spec in self.functions.values():
                if spec.fn is function:
                    return spec.id
        raise ValueError(f"invalid function {function!r}: not a function registered in this app")

    def route(self, name: str, exclude: str | None, only: str | None) -> list[tuple[str, tuple[Filter, ...]]]:
        """The functions an event named ``name`` may start, each once, with the filters of its routes that
        take the name: none (it starts), or some, of which one must hold for the event."""
        if only is not None:
            return [(only, ())] if only in self.functions else []
        found = list(self._by_name.get(name, ()))
        found.extend(fid for prefix, fid in self._prefixed if name.startswith(prefix) and fid not in found)
        routes: list[tuple[str, tuple[Filter, ...]]] = [(fid, ()) for fid in dict.fromkeys(found) if fid != exclude]
        if self._filtered_by_name or self._filtered_prefixed:
            routes.extend(self._filtered(name, exclude, found))
        return routes

    def _filtered(self, name: str, exclude: str | None, found: list[str]) -> list[tuple[str, tuple[Filter, ...]]]:
        """The functions that take ``name`` only through filtered routes (one unfiltered route: it starts)."""
        filters: dict[str, list[Filter]] = {}
        for fid, when in self._filtered_by_name.get(name, ()):
            if when.failed_of is not None and when.failed_of != exclude:
                continue  # only the engine's own event of a failed run excludes that run's function: not a sent one
            filters.setdefault(fid, []).append(when)
        for prefix, fid, when in self._filtered_prefixed:
            if name.startswith(prefix):
                filters.setdefault(fid, []).append(when)
        return [(fid, tuple(whens)) for fid, whens in filters.items() if fid != exclude and fid not in found]
