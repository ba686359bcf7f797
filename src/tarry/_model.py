"""Frozen records handed to users: events, runs, step records, and their enums.

Records are plain data built from store rows; they hold no connection and
do no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tarry import _serde
from tarry._errors import InvalidEventError

MAX_NAME = 256
MAX_EVENT_BYTES = 524_288
MAX_TS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True, init=False)
class Event:
    """An event: sent by ``app.send``, received as ``ctx.event`` or a wait's result.

    On a received event ``id`` is the engine's id (the one ``send`` returned)
    and ``ts`` its delivery time in epoch milliseconds. On an event you send,
    ``id`` is an optional deduplication key and ``ts`` an optional delivery
    time (``int`` epoch ms or an aware ``datetime``).
    """

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = field(default=None, kw_only=True)
    ts: int | None = field(default=None, kw_only=True)
    key: str | None = field(default=None, kw_only=True)
    v: str | None = field(default=None, kw_only=True)

    def __init__(
        self,
        name: str,
        data: dict[str, Any] | None = None,
        *,
        id: str | None = None,  # noqa: A002 - the contract's name
        ts: int | datetime | None = None,
        key: str | None = None,
        v: str | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "data", {} if data is None else data)
        set_(self, "id", id)
        set_(self, "ts", _ts_ms(ts))
        set_(self, "key", key)
        set_(self, "v", v)
        self._validate()

    @classmethod
    def _received(cls, name: str, data: dict[str, Any], id: str, ts: int,  # noqa: A002
                  key: str | None, v: str | None) -> Event:  # fmt: skip
        """An event read back from the store: already validated, so not checked again."""
        event = object.__new__(cls)
        event.__dict__.update(name=name, data=data, id=id, ts=ts, key=key, v=v)  # frozen: no setattr
        return event

    def _validate(self) -> str:
        """Check every field; returns the data as JSON text.

        The envelope (name, id, ts, key, v) cannot change after construction, so it is checked once
        and its size kept; the data, a dict its owner may still change, is checked on every call."""
        envelope: int | None = self.__dict__.get("_envelope_bytes")
        if envelope is None:
            envelope = self._check_envelope()
            object.__setattr__(self, "_envelope_bytes", envelope)
        if not isinstance(self.data, dict):
            raise InvalidEventError(
                f"event field 'data' must be a JSON object (a dict), got {type(self.data).__name__}"
            )
        try:
            data, data_bytes = _serde.dumps_sized(self.data, "data")
        except TypeError as exc:
            raise InvalidEventError(f"event field 'data' must hold only JSON values: {exc}") from None
        except ValueError as exc:
            raise InvalidEventError(f"event is not valid JSON text: {exc}") from None
        size = envelope - 2 + data_bytes  # the envelope's JSON with the data's text in place of {}
        if size > MAX_EVENT_BYTES:
            raise InvalidEventError(f"event is {size} bytes as JSON; the limit is {MAX_EVENT_BYTES} bytes")
        return data

    def _check_envelope(self) -> int:
        """Check the fields other than data; returns the size of the event as JSON with empty data."""
        name = self.name
        if not isinstance(name, str) or not name.strip():
            raise InvalidEventError("event field 'name' must be a non-empty string")
        if len(name) > MAX_NAME:
            raise InvalidEventError(f"event field 'name' must be at most {MAX_NAME} characters, got {len(name)}")
        texts = {"id": self.id, "key": self.key, "v": self.v}
        for field_name, value in texts.items():
            if value is not None and (not isinstance(value, str) or not value or len(value) > MAX_NAME):
                raise InvalidEventError(
                    f"event field {field_name!r} must be a non-empty string of at most {MAX_NAME} characters"
                )
        for field_name, value in (("name", name), *texts.items()):
            if value is not None and "\x00" in value:
                raise InvalidEventError(f"event field {field_name!r} must not contain the NUL character")
        quoted = {k: "null" if v is None else _serde.string(v) for k, v in texts.items()}
        ts = "null" if self.ts is None else str(self.ts)
        # what _serde.dumps({**self.to_json(), "data": {}}) writes, without walking a dict to write it
        text = (f'{{"name":{_serde.string(name)},"data":{{}},"id":{quoted["id"]},"ts":{ts},"v":{quoted["v"]},'
                f'"key":{quoted["key"]}}}')  # fmt: skip
        try:
            return _serde.utf8_size(text)
        except ValueError as exc:
            raise InvalidEventError(f"event is not valid JSON text: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """The event as Inngest's JSON event format."""
        return {"name": self.name, "data": self.data, "id": self.id, "ts": self.ts, "v": self.v, "key": self.key}

    @classmethod
    def from_json(cls, obj: object) -> Event:
        """Build an event from a JSON object, raising ``InvalidEventError`` on anything wrong."""
        if not isinstance(obj, dict):
            raise InvalidEventError(f"an event must be a JSON object, got {type(obj).__name__}")
        unknown = set(obj) - {"name", "data", "id", "ts", "v", "key", "user"}
        if unknown:
            raise InvalidEventError(f"unknown event field(s): {', '.join(sorted(unknown))}")
        fields: dict[str, Any] = obj
        return cls(fields.get("name"), fields.get("data"), id=fields.get("id"), ts=fields.get("ts"),  # type: ignore[arg-type]  # checked by __init__
                   key=fields.get("key"), v=fields.get("v"))  # fmt: skip


def _ts_ms(ts: object) -> int | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise InvalidEventError("event field 'ts' must be an aware datetime (with a timezone)")
        return round(ts.timestamp() * 1000)
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= MAX_TS:
        raise InvalidEventError(
            "event field 'ts' must be epoch milliseconds (an int from 0 to the year 9999) or an aware datetime"
        )
    return ts


class RunStatus(enum.StrEnum):
    """Where a run stands."""

    QUEUED = "queued"  #: ready to run; a worker will claim it
    RUNNING = "running"  #: a worker is executing it
    SLEEPING = "sleeping"  #: in sleep, sleep_until, or a retry's backoff
    WAITING = "waiting"  #: in wait_for_event, wait_for_all, wait_for_any, collect_events, wait_for_resume or invoke
    COMPLETED = "completed"  #: returned; ``output`` holds the value
    FAILED = "failed"  #: raised; ``error`` holds name and message
    CANCELLED = "cancelled"  #: cancelled: ``error["message"]`` names by what (cancel_run, cancel_on, a timeout...)

    @property
    def finished(self) -> bool:
        """True for completed, failed and cancelled: the run will not change again."""
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class QueuedReason(enum.StrEnum):
    """Why a queued run is not running yet (``Run.queued_reason``; ``None``: it waits for a free worker)."""

    CONCURRENCY = "concurrency"  #: a concurrency limit of its partition is reached (or a singleton it replaces runs)
    THROTTLE = "throttle"  #: its throttle window is full; it starts when the window allows


class SkipReason(enum.StrEnum):
    """Why a function started no run for an event (``skipped`` in the events API)."""

    RATE_LIMIT = "rate_limit"  #: the rate limit of its partition was reached
    IDEMPOTENCY = "idempotency"  #: a run with the same idempotency value was created in the last 24 hours
    SINGLETON = "singleton"  #: a run of its partition is unfinished (``Singleton(mode="skip")``)


class StepStatus(enum.StrEnum):
    """Where a step stands."""

    COMPLETED = "completed"  #: done; ``output`` is its recorded result
    FAILED = "failed"  #: failed for good; replay raises StepError
    RETRYING = "retrying"  #: an attempt failed; the next one is scheduled
    SLEEPING = "sleeping"  #: a sleep that has not ended
    WAITING = "waiting"  #: a wait that has not been resolved


@dataclass(frozen=True)
class StepRecord:
    """One step of a run as recorded: ``id`` has ``:n`` appended for its n-th repeat.

    ``error`` is the latest failure of a failed or retrying step (``None`` once it succeeded);
    ``errors`` every failed attempt's error, oldest first (``{"name", "message", "traceback"}``,
    ``traceback`` when the step's code raised); ``wake_at`` when a sleep ends (or ended) or, for a step
    in a retry's backoff, when its next attempt is due.
    """

    id: str
    kind: str
    status: StepStatus
    attempts: int
    output: Any
    error: dict[str, str] | None
    started_at: datetime | None
    ended_at: datetime | None
    errors: list[dict[str, str]] = field(default_factory=list)
    wake_at: datetime | None = None


@dataclass(frozen=True)
class Run:
    """One execution of a function for one event."""

    id: str
    function_id: str
    status: RunStatus
    output: Any
    error: dict[str, str] | None
    event: Event
    created_at: datetime
    ended_at: datetime | None
    steps: list[StepRecord] = field(default_factory=list)
    #: every event of a batch or debounce burst, in delivery order; else ``[event]``
    events: list[Event] = field(default_factory=list)
    #: why a queued run is not running yet (a ``QueuedReason``), else ``None``
    queued_reason: str | None = None
    #: the id of the finished run this one reruns (``app.rerun``), else ``None``
    rerun_of: str | None = None

    def __post_init__(self) -> None:
        if not self.events:
            object.__setattr__(self, "events", [self.event])


@dataclass(frozen=True)
class ResumeHandle:
    """A resume URL made by ``ctx.step.resume_url``: give ``url`` to a person or a system.

    ``token`` is unguessable and single-use; ``url`` is ``{base_url}/resume/{token}``
    (the path alone without a base url). Pass the handle to ``wait_for_resume``.
    """

    token: str
    url: str
    expires_at: datetime
    redirect_url: str | None = None


@dataclass(frozen=True)
class EventRecord:
    """A stored event as listed: the event, when it arrived, and how many runs it started and resumed."""

    event: Event
    received_at: datetime
    delivered: bool
    started: int
    resumed: int
    #: the functions that started no run for it, and why: ``{"function_id", "reason"}`` (a ``SkipReason``)
    skipped: list[dict[str, str]] = field(default_factory=list)
    seq: int = 0  #: its arrival order (the position of a page of events)


@dataclass(frozen=True)
class Wait:
    """An open wait: what a run waits for, since when, until when.

    ``kind`` is ``event`` (wait_for_event), ``resume`` (wait_for_resume),
    ``invoke``, or the step of several conditions it is one condition of
    (``wait_for_all``, ``wait_for_any``, ``collect_events``; ``condition`` its
    index, ``None`` for the others; ``remaining`` how many events a
    ``collect_events`` still takes); ``events`` the awaited names (empty for a
    key-only wait); ``match`` the index terms as ``{path: value}``;
    ``if_exp`` what is checked on each candidate; ``resume_url`` the handle's
    URL for a resume wait.
    """

    run_id: str
    function_id: str
    step_id: str
    kind: str
    events: list[str]
    match: dict[str, Any]
    if_exp: str | None
    since: datetime
    until: datetime | None
    resume_url: str | None = None
    redirect_url: str | None = None
    condition: int | None = None
    remaining: int | None = None
    seq: int = field(default=0, kw_only=True)  #: its position in the list of open waits


class DeadLetterKind(enum.StrEnum):
    """What kind of row was set aside."""

    EVENT = "event"  #: an event whose delivery kept failing; stored, left undelivered
    TIMER = "timer"  #: a timer (a sleep's end, a wait's timeout) that kept failing to fire; removed from the timers
    RUN = "run"  #: a run that kept failing to load when claimed; it ends failed (error name ``DeadLetter``)


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """A row the engine set aside after it failed again and again, so that it stops every other one
    from being delayed: kept for an operator to look at, never retried by the engine.

    ``error`` is the latest failure (``{"name", "message"}``); ``failures`` how many there were.
    ``event_id``, ``run_id`` and ``step_id`` name the row, as far as its kind has them.
    """

    id: int
    kind: DeadLetterKind
    event_id: str | None
    run_id: str | None
    step_id: str | None
    failures: int
    error: dict[str, str]
    first_failed_at: datetime
    set_aside_at: datetime


@dataclass(frozen=True, kw_only=True)
class Buffer:
    """An open debounce burst or batch: events gathered for one partition of a function, no run yet.

    ``kind`` is ``debounce`` or ``batch``; ``partition`` the value of its ``key`` for these events
    (``None`` when the function has no key; a value over 200 characters as JSON shows as ``#`` and its
    SHA-256); ``size`` the events gathered (a burst keeps its newest 1,000); ``due_at`` when its run is
    created unless the batch fills first or the burst goes on.
    """

    id: int
    function_id: str
    kind: str
    partition: Any
    size: int
    first_at: datetime
    last_at: datetime
    due_at: datetime
