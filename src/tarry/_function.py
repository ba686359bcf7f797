"""What ``@app.function`` records: the function, its id, triggers, retries and cancel_on.

Triggers are checked here, once, at decoration; matching an event name to
functions is a dict lookup plus a short list of prefixes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tarry._cron import Cron
from tarry._flow import NO_FLOW, Flow, compile_flow, option_json, options_json

MAX_RETRIES = 100


@dataclass(frozen=True)
class CancelOn:
    """An event that cancels a run: ``event`` name, optionally matched on ``match``/``if_exp``."""

    event: str
    match: str | None = None
    if_exp: str | None = None
    timeout: Any = None


@dataclass(frozen=True)
class Triggers:
    """What a function starts on: exact event names, ``prefix*`` patterns, and schedules."""

    names: tuple[str, ...]
    prefixes: tuple[str, ...]
    crons: tuple[Cron, ...] = ()

    @classmethod
    def parse(cls, trigger: object) -> Triggers:
        items = [trigger] if isinstance(trigger, str | Cron) else trigger
        if not isinstance(items, list | tuple) or not items:
            raise ValueError(
                f"invalid trigger {trigger!r}: use an event name, a list of names, a name ending in '*', or tarry.Cron(...)"
            )
        names: list[str] = []
        prefixes: list[str] = []
        crons: list[Cron] = []
        for item in items:
            if isinstance(item, Cron):
                if item not in crons:  # the same schedule twice is one schedule
                    crons.append(item)
                continue
            if not isinstance(item, str) or not item.strip() or len(item) > 256:
                raise ValueError(
                    f"invalid trigger {item!r}: an event name is a non-empty string of at most 256 characters"
                )
            if "*" in item[:-1]:
                raise ValueError(f"invalid trigger {item!r}: '*' is allowed only at the end of a name")
            (prefixes if item.endswith("*") else names).append(item.rstrip("*"))
        return cls(tuple(names), tuple(prefixes), tuple(crons))

    def matches(self, name: str) -> bool:
        return name in self.names or any(name.startswith(p) for p in self.prefixes)

    def describe(self) -> list[dict[str, Any]]:
        """Each trigger as JSON: ``{"event": name}``, ``{"event": "prefix*"}``, ``{"cron": ..., "timezone": ...}``."""
        return ([{"event": name} for name in self.names] + [{"event": prefix + "*"} for prefix in self.prefixes]
                + [{"cron": cron.expression, "timezone": cron.timezone} for cron in self.crons])  # fmt: skip


@dataclass(frozen=True)
class FunctionSpec:
    """A registered function."""

    id: str
    fn: Callable[..., Any]
    trigger: Triggers
    retries: int
    cancel_on: tuple[CancelOn, ...]
    flow: Flow = NO_FLOW
    options: dict[str, Any] = field(default_factory=dict)  # the flow-control options as given (those set)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def describe(self) -> dict[str, Any]:
        """The function as JSON (``GET /api/v1/functions``, ``tarry functions``): its id, its triggers, its
        retries, and the options that are set, each as its constructor's arguments."""
        options = options_json(self.options)
        if self.cancel_on:
            options["cancel_on"] = [option_json(item) for item in self.cancel_on]
        return {"id": self.id, "triggers": self.trigger.describe(), "retries": self.retries, "options": options}


def make_spec(fn: Callable[..., Any], trigger: object, id: str | None, retries: int,  # noqa: A002
              cancel_on: list[CancelOn] | None, flow: dict[str, Any] | None = None) -> FunctionSpec:  # fmt: skip
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
    parsed = Triggers.parse(trigger)
    scheduled = bool(parsed.crons)
    compiled = compile_flow(function_id, cancel_on=bool(cancels), scheduled=scheduled, **flow) if flow else NO_FLOW
    return FunctionSpec(function_id, fn, parsed, retries, cancels, compiled, dict(flow or {}))


class Registry:
    """The functions of one app, and the routing of event names to them."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionSpec] = {}
        self.gated = False  # whether a function's runs start only as its limits allow
        self._by_name: dict[str, list[str]] = {}
        self._prefixed: list[tuple[str, str]] = []

    def add(self, spec: FunctionSpec) -> None:
        if spec.id in self.functions:
            raise ValueError(f"duplicate function id {spec.id!r}: two functions of one app need different ids")
        self.functions[spec.id] = spec
        self.gated = self.gated or spec.flow.gated
        for name in spec.trigger.names:
            self._by_name.setdefault(name, []).append(spec.id)
        self._prefixed.extend((prefix, spec.id) for prefix in spec.trigger.prefixes)

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

    def route(self, name: str, exclude: str | None, only: str | None) -> list[str]:
        """The ids of the functions an event named ``name`` starts, each once."""
        if only is not None:
            return [only] if only in self.functions else []
        found = list(self._by_name.get(name, ()))
        found.extend(fid for prefix, fid in self._prefixed if name.startswith(prefix) and fid not in found)
        return [fid for fid in dict.fromkeys(found) if fid != exclude]
