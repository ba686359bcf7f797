"""One execution of a run's function: the memo of recorded steps and the park protocol.

A step that cannot finish now (a sleep, a retry's backoff, a wait) records
an *intent* and awaits the execution's park future. When no step is doing
real work any more, the executor fails that future with ``Park`` — a
``BaseException``, so a user's ``except Exception`` cannot swallow it — and
the function's coroutine unwinds and is dropped. Resuming replays it.
Once that future is done the execution is *closed*: no step of it starts
again, so nothing of a parked run keeps running (``settle``).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from tarry._function import FunctionSpec
from tarry._model import Event, RunStatus, StepStatus
from tarry._store.base import ClaimedRun, NewEvent, StepRow, StepWrite, TimerWrite, WaitWrite

if TYPE_CHECKING:
    from tarry._engine.engine import Engine


class Park(BaseException):
    """Unwinds a run's function when it parks. Not an error: never catch it."""


class Stop(BaseException):
    """Unwinds a run's function when it was cancelled, taken by another worker, or its store failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Intent:
    """What a parking step needs written, and the run status it implies."""

    status: RunStatus  # SLEEPING or WAITING
    steps: list[StepWrite] = field(default_factory=list)
    timers: list[TimerWrite] = field(default_factory=list)
    waits: list[WaitWrite] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)


#: the ``Stop`` reason when the store failed under a step: the run is backed off and retried
STORE_FAILED = "store-failed"

_FINISHED = (StepStatus.COMPLETED.value, StepStatus.FAILED.value)


class Execution:
    def __init__(self, engine: Engine, claimed: ClaimedRun, spec: FunctionSpec, owner: str) -> None:
        self.engine = engine
        self.run_id = claimed.id
        self.event: Event = claimed.event
        self.events: list[Event] = claimed.events or [claimed.event]
        self.spec = spec
        self.owner = owner
        self.loop = asyncio.get_running_loop()
        self.steps: dict[str, StepRow] = claimed.steps
        self.intents: list[Intent] = []
        self.active = 0
        self.changed = asyncio.Event()
        self.park_future: asyncio.Future[None] = self.loop.create_future()
        self.stop_reason: str | None = None
        self.tasks: set[asyncio.Task[Any]] = set()  # tasks that reached a step: the function, gathered branches
        self.bodies: set[asyncio.Future[Any]] = set()  # plain def step bodies running in a thread
        self._uses: dict[str, int] = {}
        self._taken: set[str] = set()
        self._unvisited = sum(1 for s in claimed.steps.values() if s.status in _FINISHED)

    def trigger_json(self) -> dict[str, object]:
        e = self.event
        return {"name": e.name, "data": e.data, "id": e.id, "ts": e.ts, "key": e.key, "v": e.v}

    @property
    def replaying(self) -> bool:
        """True while recorded steps remain that this execution has not reached yet."""
        return self._unvisited > 0

    def now(self) -> int:
        return self.engine.clock.now_ms()

    def step_id(self, step_id: str) -> str:
        """The recorded id of this use of ``step_id``: ``id``, then ``id:1``, ``id:2``... (skipping ids taken)."""
        if not isinstance(step_id, str) or not step_id or "\x00" in step_id:
            raise ValueError(f"invalid step id {step_id!r}: a non-empty string without NUL characters")
        n = self._uses.get(step_id, 0)
        recorded_id = step_id if n == 0 else f"{step_id}:{n}"
        while recorded_id in self._taken:  # a literal "x:1" next to a repeated "x": never share a record
            n += 1
            recorded_id = f"{step_id}:{n}"
        self._uses[step_id] = n + 1
        self._taken.add(recorded_id)
        return recorded_id

    def lookup(self, step_id: str) -> tuple[str, StepRow | None]:
        """The one replay seam every step method starts with: its recorded id and record, if any.

        A step reached once the execution is closed (a gathered branch that comes to its step
        after the run parked, stopped or finished) does nothing: it unwinds with the run.
        """
        self.check_open()
        task = asyncio.current_task()
        if task is not None and task not in self.tasks:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        sid = self.step_id(step_id)
        return sid, self.recorded(sid)

    def check_open(self) -> None:
        """Raise the signal that ended this execution, if it has ended."""
        if self.park_future.done():
            raise Park if self.stop_reason is None else Stop(self.stop_reason)

    def recorded(self, step_id: str) -> StepRow | None:
        row = self.steps.get(step_id)
        if row is not None and row.status in _FINISHED:
            self._unvisited -= 1
        return row

    def remember(self, row: StepRow) -> None:
        self.steps[row.id] = row

    def begin(self) -> None:
        """Real work starts (a step body, a write): the executor will not park meanwhile."""
        self.active += 1

    def end(self) -> None:
        self.active -= 1
        if self.active == 0 and self.intents:  # the executor decides only then (or when the function ends)
            self.changed.set()

    async def park(self, intent: Intent) -> NoReturn:
        """Record ``intent`` and wait until the executor unwinds the function."""
        self.check_open()  # a park decided already has written its intents
        self.intents.append(intent)
        self.changed.set()
        await self.park_future
        raise Park  # the future only ever ends with an exception

    def stop(self, reason: str) -> NoReturn:
        """End the function at this step boundary (cancelled, or the run was lost)."""
        self.stop_reason = reason
        if not self.park_future.done():
            self.park_future.set_exception(Stop(reason))
        raise Stop(reason)

    def track_body(self, body: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Keep a thread's step body until it ends: a thread cannot be cancelled, only waited for.

        Returns what its step awaits: the body's outcome, shielded (cancelling the step leaves the
        body running, kept here until it ends) — ``asyncio.shield`` in one callback instead of three."""
        outcome = self.loop.create_future()
        self.bodies.add(body)
        body.add_done_callback(functools.partial(_body_ended, self.bodies, outcome))
        return outcome

    async def settle(self, wait: bool = True) -> None:
        """End what is left of the function once it parked, stopped or finished.

        The execution is closed, so a branch reaching a step now unwinds there. Branches still
        inside a step are cancelled (their result is not recorded, so they run again on the
        next replay); with ``wait``, this returns only when they and every thread of a step
        body have ended: no step of this run is left running.
        """
        if not self.park_future.done():
            self.park_future.cancel()
        current = asyncio.current_task()
        pending = [t for t in self.tasks if not t.done() and t is not current]
        if pending and wait:
            await asyncio.sleep(0)  # branches already told to unwind (Park) do so first
            pending = [t for t in pending if not t.done()]
        for task in pending:
            task.cancel()
        if not wait:
            return
        left: set[asyncio.Future[Any]] = {*pending, *self.bodies}
        if left:
            await asyncio.wait(left)
        for task in pending:
            if not task.cancelled():
                task.exception()  # retrieved: no "never retrieved" warning


def _body_ended(bodies: set[asyncio.Future[Any]], outcome: asyncio.Future[Any], body: asyncio.Future[Any]) -> None:
    bodies.discard(body)
    if body.cancelled():
        if not outcome.done():
            outcome.cancel()
        return
    error = body.exception()  # retrieved: if its step is gone (cancelled), the error is not lost in a warning
    if outcome.done():
        return
    if error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(body.result())
