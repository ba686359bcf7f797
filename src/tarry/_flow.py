"""Flow control (API §9): the option classes of ``@app.function`` and the rules compiled from them,
with the trigger filters (§10) that admission applies first.

Each option checks its own arguments when built; ``compile_flow`` checks the whole and compiles
every expression once, at decoration. The compiled ``Flow`` is data the store is handed: what an
event's partitions and rank are comes from pure, total functions here, never from the engine.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from typing import Any

from tarry import _expressions
from tarry._durations import to_ms
from tarry._errors import ExpressionError

MAX_BATCH = 1000
#: a batch is closed when its events' JSON would pass this
MAX_BATCH_BYTES = 10 * 1024 * 1024
#: the newest events of a debounce burst that are kept for ``ctx.events``
MAX_BURST = 1000
IDEMPOTENCY_MS = 24 * 3600 * 1000
MAX_PRIORITY_S = 600
MIN_PERIOD_MS = 1000
SEP = "\x1f"  # between the parts of a partition's text


# -- the options, as users write them ------------------------------------------


def _limit(what: str, value: object, most: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (most is not None and value > most):
        bound = f" from 1 to {most:,}" if most is not None else " >= 1"
        raise ValueError(f"invalid {what} {value!r}: an int{bound} (not a bool)")


def _period(what: str, value: object, required: bool = True) -> int | None:
    if value is None and not required:
        return None
    if value is None:
        raise ValueError(f"invalid {what} None: a duration is required (seconds, a timedelta or a text like '1m')")
    ms = to_ms(value, what=what)
    if ms < MIN_PERIOD_MS:
        raise ValueError(f"invalid {what} {value!r}: at least 1 s")
    return ms


def _key(what: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"invalid {what} {value!r}: a CEL expression over event, as a string")


@dataclass(frozen=True)
class Concurrency:
    """At most ``limit`` runs of one partition executing at once (waiting and sleeping runs hold no slot).

    ``key`` (CEL over ``event``) names the partition; ``scope="app"`` shares it with every function of
    the app whose concurrency has the same ``key`` text."""

    limit: int
    key: str | None = None
    scope: str = "function"

    def __post_init__(self) -> None:
        _limit("Concurrency.limit", self.limit)
        _key("Concurrency.key", self.key)
        if self.scope not in ("function", "app"):
            raise ValueError(f"invalid Concurrency.scope {self.scope!r}: 'function' or 'app'")


@dataclass(frozen=True)
class _Window:
    """A limit of ``limit`` per ``period`` (a sliding window), per partition of ``key``."""

    limit: int
    period: Any
    key: str | None = None
    period_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = type(self).__name__
        _limit(f"{name}.limit", self.limit)
        object.__setattr__(self, "period_ms", _period(f"{name}.period", self.period))
        _key(f"{name}.key", self.key)


@dataclass(frozen=True)
class Throttle(_Window):
    """At most ``limit`` runs of one partition first starting in any ``period``; the others wait, queued."""


@dataclass(frozen=True)
class RateLimit(_Window):
    """At most ``limit`` runs of one partition admitted in any ``period``; the other events start none."""


@dataclass(frozen=True)
class Debounce:
    """One run per burst: created ``period`` after the burst's last event, or ``timeout`` after its first."""

    period: Any
    key: str | None = None
    timeout: Any = None
    period_ms: int = field(init=False, repr=False, compare=False)
    timeout_ms: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        period = _period("Debounce.period", self.period)
        assert period is not None
        timeout = _period("Debounce.timeout", self.timeout, required=False)
        if timeout is not None and timeout < period:
            raise ValueError(f"invalid Debounce.timeout {self.timeout!r}: at least the period ({self.period!r})")
        object.__setattr__(self, "period_ms", period)
        object.__setattr__(self, "timeout_ms", timeout)
        _key("Debounce.key", self.key)


@dataclass(frozen=True)
class Batch:
    """One run per ``max_size`` events of a partition, or per ``timeout`` after a batch's first event."""

    max_size: int
    timeout: Any = None  # required: None is refused with a ValueError that says so, as a bad one is
    key: str | None = None
    timeout_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _limit("Batch.max_size", self.max_size, MAX_BATCH)
        object.__setattr__(self, "timeout_ms", _period("Batch.timeout", self.timeout))
        _key("Batch.key", self.key)


@dataclass(frozen=True)
class Priority:
    """``run`` (CEL over ``event``): seconds a run goes ahead of (or behind) its place, -600 to 600."""

    run: str

    def __post_init__(self) -> None:
        if not isinstance(self.run, str):
            raise ValueError(f"invalid Priority.run {self.run!r}: a CEL expression over event, as a string")


@dataclass(frozen=True)
class Singleton:
    """At most one unfinished run per partition: ``mode="skip"`` skips new events, ``"cancel"`` replaces it."""

    key: str | None = None
    mode: str = "skip"

    def __post_init__(self) -> None:
        _key("Singleton.key", self.key)
        if self.mode not in ("skip", "cancel"):
            raise ValueError(f"invalid Singleton.mode {self.mode!r}: 'skip' or 'cancel'")


@dataclass(frozen=True)
class Timeouts:
    """Cancel a run not started ``start`` after its creation, or not finished ``finish`` after it started."""

    start: Any = None
    finish: Any = None
    start_ms: int | None = field(init=False, repr=False, compare=False)
    finish_ms: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_ms", _period("Timeouts.start", self.start, required=False))
        object.__setattr__(self, "finish_ms", _period("Timeouts.finish", self.finish, required=False))


# -- the options as JSON ----------------------------------------------------------

#: the options of ``@app.function`` that are flow control, in the order they are described
OPTIONS = ("concurrency", "throttle", "rate_limit", "debounce", "batch", "priority", "idempotency", "singleton",
           "timeouts")  # fmt: skip


def duration_json(value: Any) -> Any:
    """A duration as it was written: a text as is, a number of seconds, a ``timedelta`` as seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def option_json(option: Any) -> Any:
    """One option as JSON: its constructor's arguments (durations as written), or a text as is."""
    if isinstance(option, list | tuple):
        return [option_json(item) for item in option]
    if not is_dataclass(option):
        return option
    return {f.name: duration_json(getattr(option, f.name)) for f in fields(option) if f.init}


def options_json(options: dict[str, Any]) -> dict[str, Any]:
    """The flow-control options that are set, as JSON (``concurrency`` always a list)."""
    described: dict[str, Any] = {}
    for name in OPTIONS:
        value = options.get(name)
        if value is None:
            continue
        if name == "concurrency" and not isinstance(value, list | tuple):
            value = [value]
        described[name] = option_json(value)
    return described


# -- the compiled rules ---------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One limit counted per partition: ``prefix`` names it; ``key`` (compiled) picks the partition."""

    prefix: str
    key: _expressions.Compiled | None = None
    limit: int = 0
    period_ms: int = 0
    timeout_ms: int | None = None
    mode: str = ""

    def partition(self, event: dict[str, Any]) -> str:
        """The partition of ``event`` under this rule; a value that is null, a list or a map, or an
        expression that fails, gives the partition ``""`` (total)."""
        if self.key is None:
            return self.prefix
        return self.prefix + SEP + _partition_text(_expressions.value_of(self.key, event))


@dataclass(frozen=True)
class Filter:
    """A trigger's condition on the event it starts a run for, the first rule of admission.

    ``if_exp`` compiled (CEL over ``event``); or, for a failure handler (``failed_of``), the plain test
    that a ``tarry/function.failed`` event is of that function, cheaper than CEL and shown as its
    equivalent ``if_exp``. Routing takes such a route only for the engine's own event of a failed run
    (which excludes the run's function), never for one a caller sent under that name."""

    if_exp: str
    compiled: _expressions.Compiled | None = None
    failed_of: str | None = None

    def holds(self, event: dict[str, Any], budget: _expressions.Budget | None = None) -> bool:
        """Whether ``event`` passes; total (an expression that fails for it does not hold)."""
        if self.compiled is None:
            data = event.get("data")
            return isinstance(data, dict) and data.get("function_id") == self.failed_of
        return _expressions.holds(self.compiled, event, budget)


def compile_filter(text: object, where: str) -> Filter:
    """A trigger's ``if_exp``, compiled; ``ExpressionError`` naming ``where`` for a bad one."""
    if not isinstance(text, str):
        raise ExpressionError(repr(text), "a CEL expression over event, as a string", where)
    compiled = _compile_key(text, where, "a trigger filter")
    assert compiled is not None
    return Filter(text, compiled)


def failed_run_filter(function_id: str) -> Filter:
    """The trigger filter of ``function_id``'s failure handler: the failed run is one of its runs."""
    return Filter(f"event.data.function_id == {json.dumps(function_id)}", failed_of=function_id)


@dataclass(frozen=True)
class RunKeys:
    """What a new run carries for the limits that decide when it starts."""

    concurrency: tuple[str, ...] = ()
    throttle: str | None = None
    singleton: str | None = None
    priority_ms: int = 0


@dataclass(frozen=True)
class Flow:
    """The flow-control rules of one function, compiled at decoration."""

    concurrency: tuple[Rule, ...] = ()
    throttle: Rule | None = None
    rate_limit: Rule | None = None
    debounce: Rule | None = None
    batch: Rule | None = None
    priority: _expressions.Compiled | None = None
    idempotency: _expressions.Compiled | None = None
    singleton: Rule | None = None
    start_ms: int | None = None
    finish_ms: int | None = None

    @property
    def gated(self) -> bool:
        """Whether starting a run needs a look at the store's counts (else a claim takes it as it comes)."""
        replaces = self.singleton is not None and self.singleton.mode == "cancel"
        return bool(self.concurrency or self.throttle or self.start_ms or self.finish_ms or replaces)

    @property
    def keyed(self) -> bool:
        """Whether a new run carries partitions or a priority computed from its event."""
        return bool(self.concurrency or self.throttle or self.singleton or self.priority)

    @property
    def admits(self) -> bool:
        """Whether an event's admission has rules beyond starting a run at once."""
        return bool(self.rate_limit or self.debounce or self.batch or self.idempotency or self.singleton)

    def limit_of(self, partition: str) -> int | None:
        """The concurrency limit this function holds ``partition`` to (None: not one of its partitions)."""
        for rule in self.concurrency:
            if partition == rule.prefix or partition.startswith(rule.prefix + SEP):
                return rule.limit
        return None

    def run_keys(self, event: dict[str, Any]) -> RunKeys:
        """The partitions and priority of a new run whose (first) event is ``event``; total."""
        return RunKeys(
            concurrency=tuple(rule.partition(event) for rule in self.concurrency),
            throttle=self.throttle.partition(event) if self.throttle else None,
            singleton=self.singleton.partition(event) if self.singleton else None,
            priority_ms=self.priority_s(event) * 1000,
        )

    def priority_s(self, event: dict[str, Any]) -> int:
        """Seconds ahead of its place: truncated toward zero, clamped to ±600, 0 if not a number."""
        if self.priority is None:
            return 0
        value = _expressions.value_of(self.priority, event)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return 0
        return max(-MAX_PRIORITY_S, min(MAX_PRIORITY_S, int(value)))

    def idempotency_key(self, event: dict[str, Any]) -> str | None:
        """The idempotency value's text; None (always start a run) when it is null, a list, a map or fails."""
        if self.idempotency is None:
            return None
        value = _expressions.value_of(self.idempotency, event)
        if value is None or _expressions.is_missing(value) or not isinstance(value, str | int | float | bool):
            return None
        return _partition_text(value)


NO_FLOW = Flow()


def _partition_text(value: Any) -> str:
    """Equal values one text: a string, a number (1 and 1.0 alike), a bool; anything else ``""``."""
    if _expressions.is_missing(value) or value is None or not isinstance(value, str | int | float | bool):
        value = ""
    text = _expressions.canonical(value)  # a number that is not finite: Infinity, -Infinity, NaN (no quotes)
    return text if len(text) <= 200 else "#" + hashlib.sha256(text.encode()).hexdigest()


def _compile_key(text: str | None, where: str, what: str = "a key") -> _expressions.Compiled | None:
    if text is None:
        return None
    try:
        compiled = _expressions.compile_expression(text)
    except ExpressionError as exc:
        raise ExpressionError(text, exc.reason, where) from None
    if compiled.async_paths != ():
        raise ExpressionError(text, f"{what} names only event (async is the incoming event of a wait)", where)
    return compiled


def _option(name: str, value: object, kind: type) -> Any:
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"invalid {name} {value!r}: use tarry.{kind.__name__}(...)")
    return value


def compile_flow(
    function_id: str,
    *,
    concurrency: object = None,
    throttle: object = None,
    rate_limit: object = None,
    debounce: object = None,
    batch: object = None,
    priority: object = None,
    idempotency: object = None,
    singleton: object = None,
    timeouts: object = None,
    cancel_on: bool = False,
    scheduled: bool = False,
) -> Flow:
    """Check the options of ``function_id`` as a whole and compile them; ``ValueError`` or
    ``ExpressionError`` naming the option and the rule."""
    if isinstance(concurrency, Concurrency):
        limits = [concurrency]
    elif isinstance(concurrency, list | tuple):
        limits = list(concurrency)
        if not 1 <= len(limits) <= 2:
            raise ValueError(f"invalid concurrency {concurrency!r}: one tarry.Concurrency or a list of one or two")
        for item in limits:
            _option("concurrency item", item, Concurrency)
    elif concurrency is None:
        limits = []
    else:
        raise ValueError(f"invalid concurrency {concurrency!r}: use tarry.Concurrency(...) or a list of one or two")
    seen = set()
    for item in limits:
        if item.scope == "app" and item.key is None:
            raise ValueError("invalid concurrency: scope='app' needs a key (the partition shared across functions)")
        if (item.scope, item.key) in seen:
            raise ValueError(f"invalid concurrency: two limits with scope {item.scope!r} and key {item.key!r}")
        seen.add((item.scope, item.key))
    _option("throttle", throttle, Throttle)
    _option("rate_limit", rate_limit, RateLimit)
    _option("debounce", debounce, Debounce)
    _option("batch", batch, Batch)
    _option("priority", priority, Priority)
    _option("singleton", singleton, Singleton)
    _option("timeouts", timeouts, Timeouts)
    if idempotency is not None and not isinstance(idempotency, str):
        raise ValueError(f"invalid idempotency {idempotency!r}: a CEL expression over event, as a string")
    if batch is not None:
        others = {"debounce": debounce, "rate_limit": rate_limit, "idempotency": idempotency,
                  "singleton": singleton, "cancel_on": cancel_on or None, "a Cron trigger": scheduled or None}  # fmt: skip
        clash = [name for name, value in others.items() if value is not None]
        if clash:
            raise ValueError(f"invalid batch: it cannot be combined with {', '.join(clash)}")
    if debounce is not None and scheduled:
        raise ValueError("invalid debounce: it cannot be combined with a Cron trigger")

    fn = f"{function_id}{SEP}"
    rules = []
    for i, item in enumerate(limits):
        where = "concurrency.key" if len(limits) == 1 else f"concurrency[{i}].key"
        key = _compile_key(item.key, where)
        prefix = f"a{SEP}{item.key}" if item.scope == "app" else f"c{SEP}{fn}{item.key or ''}"
        rules.append(Rule(prefix, key, item.limit))
    t = throttle if isinstance(throttle, Throttle) else None
    r = rate_limit if isinstance(rate_limit, RateLimit) else None
    d = debounce if isinstance(debounce, Debounce) else None
    b = batch if isinstance(batch, Batch) else None
    s = singleton if isinstance(singleton, Singleton) else None
    p = priority if isinstance(priority, Priority) else None
    to = timeouts if isinstance(timeouts, Timeouts) else None
    return Flow(
        concurrency=tuple(rules),
        throttle=Rule(f"t{SEP}{function_id}", _compile_key(t.key, "throttle.key"), t.limit, t.period_ms) if t else None,
        rate_limit=Rule(f"r{SEP}{function_id}", _compile_key(r.key, "rate_limit.key"), r.limit, r.period_ms)
        if r else None,
        debounce=Rule(f"d{SEP}{function_id}", _compile_key(d.key, "debounce.key"), 0, d.period_ms, d.timeout_ms)
        if d else None,
        batch=Rule(f"b{SEP}{function_id}", _compile_key(b.key, "batch.key"), b.max_size, 0, b.timeout_ms)
        if b else None,
        priority=_compile_key(p.run, "priority.run") if p else None,
        idempotency=_compile_key(idempotency, "idempotency") if isinstance(idempotency, str) else None,
        singleton=Rule(f"s{SEP}{function_id}", _compile_key(s.key, "singleton.key"), 1, mode=s.mode) if s else None,
        start_ms=to.start_ms if to else None,
        finish_ms=to.finish_ms if to else None,
    )  # fmt: skip
