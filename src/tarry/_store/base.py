"""The Store protocol: the narrow async interface every database implements.

Each method is one transaction. The engine decides *what* to write; the store
decides only *how* to write it in its dialect. Records crossing this
boundary are the small dataclasses below, with JSON already encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tarry._model import Event, Run

#: event name, function id to exclude (or None), function id to restrict to (or None) -> function ids
Router = Callable[[str, str | None, str | None], list[str]]

#: the run as it was, its new status and error -> the system events to send (built by the engine)
SystemEvents = Callable[[Run, str, dict[str, str] | None, Any], list["NewEvent"]]


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


@dataclass(frozen=True)
class TimerWrite:
    """A timer on one step of a run: a sleep's end or a retry's backoff."""

    step_id: str
    kind: str  # "sleep" | "retry"
    due_at: int


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


@dataclass(frozen=True)
class ClaimedRun:
    """A run a worker has claimed, with what replay needs."""

    id: str
    function_id: str
    event: Event
    created_at: int
    steps: dict[str, StepRow] = field(default_factory=dict)


class Control:
    """What a run's executor must do after writing a step."""

    CONTINUE = "continue"  #: carry on
    CANCEL = "cancel"  #: the run was cancelled; stop at this boundary
    LOST = "lost"  #: another worker owns the run now; drop it


class Park:
    """How a park ended."""

    PARKED = "parked"  #: the run sleeps or waits now
    AGAIN = "again"  #: something resolved meanwhile: execute again at once (fresh steps returned)
    CANCEL = "cancel"  #: the run was cancelled
    LOST = "lost"  #: another worker owns the run now


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply every pending migration."""

    async def close(self) -> None: ...

    async def send(self, events: list[NewEvent], now: int, router: Router | None, dedup_since: int) -> list[str]:
        """Insert events (deduplicated by ``dedup_id`` since ``dedup_since``) and deliver those due.

        Without a router, events are left for a worker's next turn to deliver."""

    async def deliver_due(self, now: int, router: Router, limit: int) -> int:
        """Deliver delayed events that came due; returns how many."""

    async def tick(self, owner: str, limit: int, now: int, router: Router) -> tuple[list[ClaimedRun], int | None]:
        """One worker turn: deliver due events, fire due timers, claim up to ``limit`` runs.

        Returns the claimed runs and the next due time of any timer or event."""

    async def claim(self, owner: str, limit: int) -> list[ClaimedRun]:
        """Mark up to ``limit`` queued runs as running for ``owner`` and return them."""

    async def record_step(
        self, run_id: str, owner: str, step: StepWrite, timer: TimerWrite | None,
        events: list[NewEvent], now: int, router: Router, dedup_since: int,
    ) -> tuple[str, list[str]]:  # fmt: skip
        """Write one step (and its timer, and events it sends) if ``owner`` still holds the run.

        Returns a ``Control`` and the ids of the events sent (then also the step's output)."""

    async def park(self, run_id: str, owner: str, status: str, steps: list[StepWrite],
                   timers: list[TimerWrite]) -> tuple[str, dict[str, StepRow]]:  # fmt: skip
        """Write the parked steps and timers; park the run unless something woke it meanwhile.

        Returns a ``Park`` outcome, and for ``AGAIN`` the run's fresh step records."""

    async def finish(self, run_id: str, owner: str | None, status: str, output: str | None,
                     error: dict[str, str] | None, now: int, router: Router,
                     system_events: SystemEvents) -> bool:  # fmt: skip
        """End the run (held by ``owner``, if given) and send its system events.

        A run asked to cancel ends cancelled whatever ``status`` says. False if it had already ended."""

    async def requeue(self, run_id: str, owner: str, now: int) -> None: ...

    async def cancel(self, run_id: str, now: int, router: Router, system_events: SystemEvents) -> str:
        """Cancel a run: at once (``"cancelled"``) unless it is running (``"requested"``: at its
        next step boundary); ``"ended"`` if it had already finished or does not exist."""

    async def fire_timers(self, now: int, limit: int) -> int:
        """Fire timers due at ``now``: end their sleeps and make their runs runnable."""

    async def next_due(self) -> int | None:
        """The earliest due time of any timer or undelivered event."""

    async def has_work(self, now: int) -> bool:
        """Whether any run is queued or running, or any timer or event is due."""

    async def get_run(self, run_id: str) -> Run | None: ...

    async def list_runs(self, function_id: str | None, status: str | None, limit: int) -> list[Run]: ...

    async def runs_for_event(self, event_id: str) -> list[Run]: ...

    async def heartbeat(self, owner: str, wall_now: int) -> None: ...

    async def recover(self, alive_since: int, now: int) -> int:
        """Requeue running runs whose worker's heartbeat is older than ``alive_since``."""

    async def release(self, owner: str, now: int) -> None:
        """Requeue the runs ``owner`` holds and forget the worker (a clean shutdown)."""
