"""The Store protocol: the narrow async interface every database implements.

Each method is one transaction. The engine decides *what* to write; the store
decides only *how* to write it in its dialect, calling back into ``Hooks``
(given at ``open``) for the engine's rules: which functions an event starts,
an event's index key for a wait shape, whether an expression accepts an event.
Records crossing this boundary are small dataclasses with JSON already encoded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from tarry._expressions import Budget
from tarry._flow import Filter, Flow
from tarry._model import Buffer, DeadLetter, Event, EventRecord, Run

#: failures of one row (an event's delivery, a timer, a claimed run's load) before it is set aside
MAX_FAILURES = 3


class Hooks(Protocol):
    """The engine's rules, called by a store inside its transactions (so: quick and pure).

    Total: for any event, trigger or run the store hands them they answer, never raise (a
    computation that fails for one event is "no match"). The store still takes a failure of one row
    as that row's alone (see ``MAX_FAILURES``)."""

    def route(self, name: str, exclude: str | None, only: str | None) -> list[tuple[str, tuple[Filter, ...]]]:
        """The ids of the functions an event named ``name`` may start, each with its trigger filters:
        none (it starts), or some, of which one must hold for the event."""

    def system_events(self, run: Run, status: str, error: dict[str, str] | None, output: Any,
                      now: int) -> list[NewEvent]:  # fmt: skip
        """The ``tarry/function.*`` events of a run that ended with ``status`` at ``now``."""

    def event_key(self, shape: str, event: dict[str, Any]) -> str | None:
        """The index key of an incoming event for a wait ``shape``; None if it lacks a path."""

    def accepts(self, if_exp: str, trigger: dict[str, Any], event: dict[str, Any],
                budget: Budget | None = None) -> bool:  # fmt: skip
        """Whether ``if_exp`` holds for this trigger event and incoming event; with a ``budget`` (one per
        incoming event), charged what it reads, and False once that is spent."""

    def flow(self, function_id: str) -> Flow:
        """The flow-control rules of a function (data: ``NO_FLOW`` for one without, or unknown here)."""

    def knows(self, function_id: str) -> bool:
        """Whether ``function_id`` is a function of this app."""

    def widest(self, partition: str) -> int:
        """The largest concurrency limit any function of this app holds ``partition`` to."""

    @property
    def gated(self) -> bool:
        """Whether some function of this app has rules that decide when its runs start."""

    def cancel_waits(self, function_id: str, trigger: dict[str, Any]) -> list[WaitWrite]:
        """The cancel_on waits of a new run of ``function_id``."""

    def wake(self) -> None:
        """Another process may have made work: look now (called on the event loop)."""


@dataclass(frozen=True)
class NewEvent:
    """An accepted event ready to insert: validated, with its engine id."""

    id: str
    name: str
    data: str  # JSON object
    key: str | None
    v: str | None
    dedup_id: str | None
    ts: int
    received_at: int
    exclude_function: str | None = None
    only_function: str | None = None


@dataclass(frozen=True)
class StepWrite:
    """A step record to insert or update."""

    id: str
    kind: str
    status: str
    attempts: int = 0
    output: str | None = None  # JSON
    error: str | None = None  # JSON
    started_at: int | None = None
    ended_at: int | None = None
    wake_at: int | None = None  # a sleep's or a retry's due time


class TimerKind(enum.StrEnum):
    """What a timer does when it fires."""

    SLEEP = "sleep"  #: ends a sleep
    RETRY = "retry"  #: ends a retry's backoff
    WAIT_CONTINUE = "wait-continue"  #: a wait's timeout: the step returns None
    WAIT_FAIL = "wait-fail"  #: a wait's timeout: the step fails with WaitTimeoutError
    WAIT_CANCEL = "wait-cancel"  #: a wait's timeout: the run is cancelled
    ALL_CONTINUE = "all-continue"  #: a wait_for_all's deadline: the step returns what it has, None for the rest
    ALL_FAIL = "all-fail"  #: a wait_for_all's deadline: the step fails with WaitTimeoutError
    ALL_CANCEL = "all-cancel"  #: a wait_for_all's deadline: the run is cancelled
    ANY_CONTINUE = "any-continue"  #: a wait_for_any's deadline: the step returns None
    ANY_FAIL = "any-fail"  #: a wait_for_any's deadline: the step fails with WaitTimeoutError
    ANY_CANCEL = "any-cancel"  #: a wait_for_any's deadline: the run is cancelled
    COLLECT = "collect-continue"  #: a collect_events's deadline: the step returns what it gathered
    CANCEL_EXPIRE = "cancel-expire"  #: a cancel_on stops listening
    START_TIMEOUT = "start-timeout"  #: ``timeouts.start``: a run not started by now is cancelled
    FINISH_TIMEOUT = "finish-timeout"  #: ``timeouts.finish``: a run not finished by now is cancelled
    THROTTLE = "throttle"  #: a run held by its throttle window may start now
    FLUSH = "flush"  #: a debounce burst or a batch is due: its run is created
    SCHEDULE = "schedule"  #: a schedule's tick: its event is sent, the timer moves to the next tick


@dataclass(frozen=True)
class TimerWrite:
    """A timer on one step of a run (``kind``: a ``TimerKind``)."""

    step_id: str
    kind: str
    due_at: int


@dataclass(frozen=True)
class ScheduleWrite:
    """A schedule of the code: a function's Cron trigger (``cron`` as written, ``timezone`` an IANA zone)."""

    function_id: str
    cron: str
    timezone: str


@dataclass(frozen=True)
class WaitWrite:
    """A wait to register: for events (by name, shape and key), a resume handle, a child run, or a cancel_on.

    ``shape`` is the sorted index paths joined by ``|`` and ``match_key`` the
    trigger's values for them ("" and "" for a wait scanned by name only).
    ``lookback``: ``run`` (events after the trigger), ``none``, or ``since``
    (events received at or after ``since``).
    """

    step_id: str
    kind: str  # "event" | "resume" | "invoke" | "cancel"
    names: tuple[str, ...]  # "" stands for any name (a key-only wait)
    shape: str
    match_key: str
    if_exp: str | None
    lookback: str = "none"
    since: int = 0
    timer: TimerWrite | None = None
    key: str | None = None  # the correlation key, for looking back by key
    condition: int = 0  # its position among the conditions of a step of several (wait_for_all, ...)
    take: int = 1  # how many events it takes (collect_events: up to its count)
    room: int = 0  # collect_events: how many bytes of events its result has room for


@dataclass(frozen=True)
class SdkAppRow:
    """An app served by an Inngest SDK, as its last sync stored it: ``functions`` as the SDK's JSON."""

    app_id: str
    url: str
    functions: str
    digest: str
    synced_at: int


@dataclass(frozen=True)
class HandleWrite:
    """A resume handle: only the token's hash is stored."""

    token_hash: str
    step_id: str
    expires_at: int
    payload: str | None  # JSON object
    redirect_url: str | None


@dataclass(frozen=True)
class StepRow:
    """A step record as stored, JSON still encoded."""

    id: str
    kind: str
    status: str
    attempts: int
    output: str | None
    error: str | None
    started_at: int | None
    ended_at: int | None
    wake_at: int | None = None


@dataclass(frozen=True)
class ClaimedRun:
    """A run a worker has claimed, with what replay needs."""

    id: str
    function_id: str
    event: Event
    created_at: int
    steps: dict[str, StepRow] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)  # a batch's or burst's; empty for a run of one event


@dataclass(frozen=True)
class Sent:
    """What ``send`` did: the events' ids in order, the runs it resumed at once, and the runs it
    claimed for the caller's worker (``claim``)."""

    ids: list[str]
    resumed: list[str]
    claimed: list[ClaimedRun] = field(default_factory=list)


@dataclass(frozen=True)
class WaitRow:
    """An open wait as stored (names split, JSON still encoded)."""

    run_id: str
    function_id: str
    step_id: str
    kind: str
    names: list[str]
    shape: str
    match_key: str
    if_exp: str | None
    created_at: int
    due_at: int | None
    handle_step: str | None
    redirect_url: str | None
    seq: int = 0  # its position in the list of waits
    condition: int = 0  # its position among the conditions of its step
    take: int = 1  # how many events it still takes


@dataclass(frozen=True)
class Counts:
    """What the metrics report: runs by status, open waits, those in the scanned bucket, and dead letters."""

    runs: dict[str, int]
    open_waits: int
    scanned_waits: int
    dead_letters: int = 0
    queued: dict[str, int] = field(default_factory=dict)  # held queued runs by QueuedReason
    skipped: dict[tuple[str, str], int] = field(default_factory=dict)  # (function id, SkipReason) -> events


#: a position no run's ``(created_at, id)`` reaches: the open ends of a ``RunQuery``'s range
FAR = 1 << 62


@dataclass(frozen=True, kw_only=True)
class RunQuery:
    """Which runs a list holds, in which order, and where its page starts: every filter given must hold.

    ``statuses``: any of these (``None``: any status). ``run_id``: that run alone; ``rerun_of``: the
    reruns of that run. ``created_after`` (inclusive) and
    ``created_before`` (exclusive) bound ``created_at`` (epoch ms). ``after``: the ``(created_at, id)``
    of the last run of the previous page (the keyset position ``query_runs`` returned); the page goes
    on strictly after it. Runs are ordered by ``(created_at, id)``, newest first unless
    ``oldest_first``."""

    function_id: str | None = None
    statuses: tuple[str, ...] | None = None
    event_id: str | None = None
    run_id: str | None = None  # this run only
    rerun_of: str | None = None  # the runs made again from this one
    created_after: int | None = None
    created_before: int | None = None
    after: tuple[int, str] | None = None
    oldest_first: bool = False

    def bounds(self) -> dict[str, Any]:
        """The query's range as parameters: ``(created_at, id)`` from ``lo`` (inclusive) to ``hi``
        (exclusive), and ``skip``, the id of the previous page's last run (excluded, for an oldest-first
        page that starts at it). Open ends are ``FAR``; ``""`` sorts before every id."""
        lo: tuple[int, str] = (-FAR if self.created_after is None else self.created_after, "")
        hi: tuple[int, str] = (FAR if self.created_before is None else self.created_before, "")
        skip = ""
        if self.after is not None:  # an id is never "", so (at, id) > (at, "")
            if self.oldest_first and self.after[0] >= lo[0]:
                lo, skip = self.after, self.after[1]
            elif not self.oldest_first and self.after[0] < hi[0]:
                hi = self.after
        return {"lo_at": lo[0], "lo_id": lo[1], "hi_at": hi[0], "hi_id": hi[1], "skip": skip}


class Delivery(enum.IntEnum):
    """An event's ``delivered`` column."""

    PENDING = 0  #: not delivered yet (due at its ``ts``)
    DELIVERED = 1  #: delivered: its runs started, its waits resolved
    SET_ASIDE = 2  #: its delivery failed ``MAX_FAILURES`` times: a dead letter, never delivered


class Cancelled(enum.StrEnum):
    """What ``Store.cancel`` did."""

    CANCELLED = "cancelled"  #: the run ended cancelled at once
    REQUESTED = "requested"  #: it is running: it ends cancelled at its next step boundary
    ENDED = "ended"  #: it had already finished (or does not exist)


class Control(enum.StrEnum):
    """What a run's executor must do after writing a step."""

    CONTINUE = "continue"  #: carry on
    CANCEL = "cancel"  #: the run was cancelled; stop at this boundary
    LOST = "lost"  #: another worker owns the run now; drop it


class Park(enum.StrEnum):
    """How a park ended."""

    PARKED = "parked"  #: the run sleeps or waits now
    AGAIN = "again"  #: something resolved meanwhile: execute again at once (fresh steps returned)
    CANCEL = "cancel"  #: the run was cancelled
    LOST = "lost"  #: another worker owns the run now


class Store(Protocol):
    async def open(self, hooks: Hooks) -> None:
        """Connect and apply every pending migration."""

    async def close(self) -> None: ...

    def watch(self) -> None:
        """From now until ``close``, call ``Hooks.wake`` soon after another process stores work (its
        commits, not ours: ours wake this process already). Idempotent. Only a process that works
        or waits for runs asks (a client that only sends needs no wake-up); polling stays the
        guarantee, this only makes it fast."""

    async def send(self, events: list[NewEvent], now: int, deliver: bool, dedup_since: int,
                   claim: tuple[str, int] | None = None) -> Sent:  # fmt: skip
        """Insert events (deduplicated by ``dedup_id`` since ``dedup_since``) and, with ``deliver``,
        deliver those due: start the functions they trigger and resolve the waits they match.
        Without ``deliver``, a worker's next turn delivers them.

        ``claim`` (owner, limit): when the events started or woke runs, claim up to ``limit``
        queued runs for that worker in the same transaction, as its turn would."""

    async def tick(self, owner: str, limit: int, now: int) -> tuple[list[ClaimedRun], int | None]:
        """One worker turn: deliver due events, fire due timers, claim up to ``limit`` runs.

        Returns the claimed runs and the next due time of any timer or event."""

    async def record_step(
        self, run_id: str, owner: str, step: StepWrite, timer: TimerWrite | None, events: list[NewEvent],
        now: int, dedup_since: int, handle: HandleWrite | None = None,
    ) -> tuple[str, list[str]]:  # fmt: skip
        """Write one step (its timer, the events it sends, a resume handle) if ``owner`` holds the run.

        Returns a ``Control`` and the ids of the events sent (then also the step's output)."""

    async def park(
        self, run_id: str, owner: str, status: str, steps: list[StepWrite], timers: list[TimerWrite],
        waits: list[WaitWrite], events: list[NewEvent], now: int,
    ) -> tuple[str, dict[str, StepRow]]:  # fmt: skip
        """Write the parked steps, timers, waits (each first looking back at stored events) and
        events; park the run unless something resolved meanwhile.

        Returns a ``Park`` outcome, and for ``AGAIN`` the run's fresh step records."""

    async def finish(
        self, run_id: str, owner: str | None, status: str, output: str | None, error: dict[str, str] | None,
        now: int,
    ) -> bool:  # fmt: skip
        """End the run (held by ``owner``, if given), drop its waits, send its system events.

        A run asked to cancel ends cancelled whatever ``status`` says. True if its system events
        started or resumed runs (a worker should look); False if not, or if it had already ended."""

    async def back_off(self, run_id: str, owner: str, due_at: int) -> None:
        """Hand a run back after an unexpected failure (the store itself, say): it runs again at ``due_at``."""

    async def cancel(self, run_id: str, now: int, why: str | None = None) -> str:
        """Cancel a run: at once (``"cancelled"``) unless it is running (``"requested"``: at its
        next step boundary); ``"ended"`` if it had already finished or does not exist. ``why`` becomes
        its error's message."""

    async def rerun(self, run_id: str, from_step: str | None, now: int) -> str:
        """Create a new run of a finished run's function with its trigger and events (``rerun_of`` set),
        as ``step.invoke``'s runs are created; with ``from_step``, its finished steps recorded before that
        one are kept (but a ``resume_url``) with the events they consumed. Returns the new run's id;
        ``ValueError`` for an unknown or unfinished run, an unregistered function or an unknown step."""

    async def cancel_runs(self, run_ids: list[str], now: int, why: str) -> list[str]:
        """One page of a bulk cancel, in one transaction: each run cancelled as ``cancel`` does; the
        ``Cancelled`` outcome of each, in order."""

    async def rerun_runs(self, run_ids: list[str], now: int) -> list[str]:
        """One page of a bulk rerun, in one transaction: each finished run rerun as ``rerun`` does (without
        ``from_step``), in order; the new runs' ids, in the same order."""

    async def resume(self, token_hash: str, data: str | None, now: int) -> bool:
        """Use a resume handle once: resolve its wait, or keep the data until the run waits."""

    async def peek_handle(self, token_hash: str, now: int) -> tuple[bool, str | None]:
        """Whether a resume token would be accepted now (changing nothing), and its redirect URL."""

    async def sync_schedules(self, schedules: list[ScheduleWrite], now: int) -> None:
        """Make the stored schedules those of ``schedules`` (a worker's code, at its start): new ones are
        stored with their first tick strictly after ``now``, the others kept as they are (with their next
        tick, so the latest missed one fires), and every schedule not among them is deleted."""

    async def save_sdk_app(self, app: SdkAppRow) -> bool:
        """Store the sync of an app served by an Inngest SDK, replacing its last one; ``False`` (and nothing
        written) when the stored one has the same digest."""

    async def sdk_apps(self) -> list[SdkAppRow]:
        """Every stored SDK app, by app id."""

    async def sdk_apps_version(self) -> str:
        """What changes with every sync that changes something: the stored apps' digests, in one text."""

    async def next_due(self) -> int | None:
        """The earliest due time of any timer or undelivered event."""

    async def has_work(self, now: int) -> bool:
        """Whether any run is queued or running, or any timer or event is due."""

    async def get_run(self, run_id: str) -> Run | None: ...

    async def query_runs(self, query: RunQuery, limit: int) -> tuple[list[Run], tuple[int, str] | None]:
        """Up to ``limit`` runs matching ``query`` (without their steps), in its order; and the keyset
        position to pass as ``after`` for the next page, or None when no run is left after these."""

    async def count_runs(self, query: RunQuery) -> dict[str, int]:
        """How many runs of each status match ``query`` (its ``function_id``, ``event_id`` and range;
        its statuses, position and order do not count); every status is present, 0 when none."""

    async def runs_by_ids(self, run_ids: list[str]) -> list[Run]:
        """The runs of these ids that exist (without their steps), in no order."""

    async def runs_for_event(self, event_id: str) -> list[Run]: ...

    async def list_events(self, name: str | None, limit: int, before: int | None = None) -> list[EventRecord]:
        """Events (of one name, if given), newest first by arrival; ``before``: only those whose ``seq``
        is below it (the next page)."""

    async def get_event(self, event_id: str) -> EventRecord | None: ...

    async def runs_resumed_by_event(self, event_id: str, limit: int | None = None,
                                    before: str | None = None) -> list[Run]:  # fmt: skip
        """The runs whose waits this event resolved, newest first (ids below ``before``)."""

    async def list_waits(self, run_id: str | None, limit: int, before: int | None = None) -> list[WaitRow]:
        """Open waits (not cancel_on listeners; of one run, if given), newest first; ``before``: only
        those whose ``seq`` is below it (the next page)."""

    async def counts(self) -> Counts: ...

    async def dead_letters(self, limit: int, before: int | None = None) -> list[DeadLetter]:
        """Rows set aside after failing ``MAX_FAILURES`` times, newest first (ids below ``before``)."""

    async def list_buffers(self, function_id: str | None, limit: int, before: int | None = None) -> list[Buffer]:
        """Open debounce bursts and batches (of one function, if given), newest first (ids below ``before``)."""

    async def heartbeat(self, owner: str, wall_now: int) -> None: ...

    async def recover(self, alive_since: int, now: int) -> int:
        """Requeue running runs whose worker's heartbeat is older than ``alive_since``."""

    async def release(self, owner: str, now: int) -> None:
        """Requeue the runs ``owner`` holds and forget the worker (a clean shutdown)."""
