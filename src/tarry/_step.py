"""``ctx.step``: every step method, each with one shape and a ``_sync`` twin.

A step first looks up its recorded result (replay); only a step never
finished does real work. Durations are normalised here, at the boundary.
Sync twins only bridge a plain ``def`` function's thread to the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
import logging
import reprlib
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from tarry import _clock, _serde
from tarry._durations import Duration, to_ms
from tarry._engine import runlog, signing, waits
from tarry._engine.execution import STORE_FAILED, Intent, Park, Stop
from tarry._engine.retry import retry_delay_ms
from tarry._errors import NonRetriableError, StepError, StoreError, WaitTimeoutError, describe
from tarry._function import Wait
from tarry._model import Event, ResumeHandle, RunStatus, StepStatus
from tarry._store.base import Control, HandleWrite, StepRow, StepWrite, TimerWrite, WaitWrite
from tarry._twins import sync_twin

if TYPE_CHECKING:
    from tarry._engine.execution import Execution

log = logging.getLogger("tarry.worker")
T = TypeVar("T")

#: the attempt of the step whose body is running (0 for the first), read by ``ctx.attempt``
current_attempt: contextvars.ContextVar[int] = contextvars.ContextVar("tarry_attempt", default=0)
#: the recorded id of the step whose body is running (None outside a step body), on ``ctx.logger``'s records
current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("tarry_step", default=None)


class Step:
    """The steps of one run. Every method takes the step id first, options keyword-only."""

    def __init__(self, execution: Execution) -> None:
        self._x = execution

    # -- step.run -----------------------------------------------------------

    async def run(self, step_id: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` once and record its JSON result; retried on errors."""
        x = self._x
        sid, row = x.lookup(step_id)
        if row is not None and row.status == StepStatus.COMPLETED:
            return _serde.loads(row.output)
        if row is not None and row.status == StepStatus.FAILED:
            raise _step_error(sid, _serde.loads(row.error))
        if x.engine.cancel_requested(x.run_id):
            x.stop(Control.CANCEL)
        if row is not None and row.wake_at is not None and row.wake_at > x.now():
            await x.park(Intent(RunStatus.SLEEPING))  # woken early (a gathered step): the backoff still runs
        attempts = row.attempts if row is not None else 0
        started = x.now()
        began = time.perf_counter()
        x.begin()
        try:
            token, step_token = current_attempt.set(attempts), current_step.set(sid)
            try:
                value = await _call(x, fn, args, kwargs)
            except BaseException as exc:  # a step's failure, retried or raised as StepError
                if _is_control(exc):
                    raise
                return await self._failed(sid, attempts + 1, started, exc)
            finally:
                current_attempt.reset(token)
                current_step.reset(step_token)
            try:
                output, size = _serde.dumps_sized(value)
            except (TypeError, ValueError) as exc:
                problem = type(exc)(f"step {sid!r} returned a value that cannot be stored as JSON: {exc}")
                return await self._failed(sid, attempts + 1, started, problem, retry=False)
            too_big = _serde.too_big(f"step {sid!r} returned", size)
            if too_big is not None:  # the body ran: a retry would repeat it, for the same result
                return await self._failed(sid, attempts + 1, started, ValueError(too_big), retry=False)
            await self._write(StepWrite(sid, "run", StepStatus.COMPLETED, attempts + 1, output, None,
                                        started, x.now()))  # fmt: skip
            x.engine.metrics.run_step_duration.observe(time.perf_counter() - began)
            return _serde.loads(output)
        finally:
            x.end()

    async def _failed(self, sid: str, attempts: int, started: int, exc: BaseException, retry: bool = True) -> Any:
        """Record a failed attempt: a retry after its backoff, or the step's failure (``StepError``).

        An exception the step's code raised keeps its traceback; one the engine made (a result it
        cannot keep) has none."""
        x = self._x
        error = describe(exc, traceback=True)
        if retry and not isinstance(exc, NonRetriableError) and attempts <= x.spec.retries:
            now = x.now()
            due = now + retry_delay_ms(exc, attempts, now)
            await self._write(
                StepWrite(sid, "run", StepStatus.RETRYING, attempts, None, _serde.dumps(error), started, now, due),
                TimerWrite(sid, "retry", due),
            )
            runlog.retrying(x.run_id, x.spec.id, sid, attempts, x.spec.retries + 1, now - started, due - now, error)
            x.end()  # parked, not working: let the executor unwind the run
            try:
                await x.park(Intent(RunStatus.SLEEPING))
            finally:
                x.begin()
        now = x.now()
        await self._write(StepWrite(sid, "run", StepStatus.FAILED, attempts, None, _serde.dumps(error), started, now))
        runlog.step_failed(x.run_id, x.spec.id, sid, attempts, now - started, error)
        raise _step_error(sid, error) from None

    async def _write(self, step: StepWrite, timer: TimerWrite | None = None, events: list[Any] | None = None,
                     handle: HandleWrite | None = None) -> Any:  # fmt: skip
        """Record ``step`` (and its timer, events, handle) in one transaction; stop if the run was cancelled."""
        x = self._x
        try:
            control, ids = await x.engine.store.record_step(
                x.run_id, x.owner, step, timer, events or [], x.now(), x.engine.dedup_since(), handle
            )
        except StoreError:
            log.warning("run %s: recording step %r failed; the run will be retried", x.run_id, step.id, exc_info=True)
            x.stop(STORE_FAILED)
        x.remember(StepRow(step.id, step.kind, step.status, step.attempts,
                           step.output if not events else _serde.dumps(ids), step.error,
                           step.started_at, step.ended_at, step.wake_at))  # fmt: skip
        if timer is not None or events:
            x.engine.wake()  # a timer to keep, or runs the events may have started
        else:
            x.engine.progress.fire()
        if control != Control.CONTINUE:
            x.stop(control)
        return ids

    # -- sleeps -------------------------------------------------------------

    async def sleep(self, step_id: str, duration: Duration) -> None:
        """Pause the run for ``duration`` (seconds, a ``timedelta`` or a text like ``"3d"``)."""
        ms = to_ms(duration, what="sleep duration")
        await self._sleep(step_id, lambda now: now + ms)

    async def sleep_until(self, step_id: str, when: datetime | str) -> None:
        """Pause the run until ``when`` (an aware ``datetime`` or an ISO 8601 text with an offset)."""
        moment = _aware(when)
        await self._sleep(step_id, lambda now: _clock.to_ms(moment))

    async def _sleep(self, step_id: str, due_at: Callable[[int], int]) -> None:
        x = self._x
        sid, row = x.lookup(step_id)
        if row is not None and row.status == StepStatus.COMPLETED:
            return
        if row is None:
            now = x.now()
            due = due_at(now)
            if due <= now:
                x.begin()
                try:
                    await self._write(StepWrite(sid, "sleep", StepStatus.COMPLETED, 0, None, None, now, now, due))
                finally:
                    x.end()
                return
            await x.park(Intent(RunStatus.SLEEPING, [StepWrite(sid, "sleep", StepStatus.SLEEPING, 0, None, None, now, None, due)],
                                [TimerWrite(sid, "sleep", due)]))  # fmt: skip
        await x.park(Intent(RunStatus.SLEEPING))

    # -- send_event ---------------------------------------------------------

    async def send_event(self, step_id: str, events: Event | list[Event]) -> list[str]:
        """Send events once, even when the run re-executes; returns their ids."""
        x = self._x
        sid, row = x.lookup(step_id)
        if row is not None and row.status == StepStatus.COMPLETED:
            return list(_serde.loads(row.output))
        new = x.engine.new_events(events)
        x.begin()
        try:
            now = x.now()
            ids: list[str] = await self._write(
                StepWrite(sid, "send_event", StepStatus.COMPLETED, 1, None, None, now, now), events=new
            )
        finally:
            x.end()
        return ids

    # -- waiting ------------------------------------------------------------

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str | list[str] | None = None,
        timeout: Duration,
        match: str | None = None,
        if_exp: str | None = None,
        key: str | None = None,
        on_timeout: str = "continue",
        lookback: Duration | None = "run",
    ) -> Event | None:
        """Park until an event matches (returned) or ``timeout`` passes (then per ``on_timeout``)."""
        x = self._x
        output = await self._wait(step_id, "wait_for_event", lambda sid: waits.wait_for_event(
            sid, event=event, timeout=timeout, match=match, if_exp=if_exp, key=key, on_timeout=on_timeout,
            lookback=lookback, trigger=x.trigger_json(), now=x.now(),
        ))  # fmt: skip
        return None if output is None else _received(output)

    async def wait_for_all(self, step_id: str, waits: list[Wait], *, timeout: Duration, on_timeout: str = "continue",
                           lookback: Duration | None = "run") -> list[Event | None]:  # fmt: skip
        """Park until every condition has taken an event; returns them in the order of ``waits``.

        One deadline for all: when it passes first, per ``on_timeout`` (``"continue"``: ``None`` for
        the conditions still open); the events already taken stay consumed."""
        output = await self._wait(step_id, "wait_for_all", self._conditions("wait_for_all", waits, timeout=timeout,
                                                                           on_timeout=on_timeout, lookback=lookback))  # fmt: skip
        return [None if e is None else _received(e) for e in output]

    async def wait_for_any(self, step_id: str, waits: list[Wait], *, timeout: Duration, on_timeout: str = "continue",
                           lookback: Duration | None = "run") -> tuple[int, Event] | None:  # fmt: skip
        """Park until the first event that matches any condition: returns ``(its index, the event)``.

        The other conditions close in the same transaction and consume nothing; at the deadline, per
        ``on_timeout`` (``None`` for ``"continue"``)."""
        output = await self._wait(step_id, "wait_for_any", self._conditions("wait_for_any", waits, timeout=timeout,
                                                                           on_timeout=on_timeout, lookback=lookback))  # fmt: skip
        return None if output is None else (output[0], _received(output[1]))

    async def collect_events(
        self, step_id: str, *, event: str | list[str] | None = None, match: str | None = None,
        if_exp: str | None = None, key: str | None = None, count: int | None = None, timeout: Duration,
        lookback: Duration | None = "run",
    ) -> list[Event]:  # fmt: skip
        """Gather matching events until ``count`` have arrived or ``timeout`` passes; oldest first.

        The timeout is no error here: the step returns what it has (possibly ``[]``). It stops at
        1,000 events, or before its events would pass 4 MiB of JSON."""
        condition = {"event": event, "match": match, "if_exp": if_exp, "key": key}
        x = self._x
        output = await self._wait(step_id, "collect_events", lambda sid: waits.group(
            sid, "collect_events", [condition], timeout=timeout, on_timeout="continue", lookback=lookback,
            count=count, trigger=x.trigger_json(), now=x.now()))  # fmt: skip
        return [_received(e) for e in output]

    def _conditions(self, kind: str, items: object, **options: Any) -> Callable[[str], list[WaitWrite]]:
        """Build a step's conditions when it is first reached (its options checked then, as a wait's)."""
        x = self._x

        def build(sid: str) -> list[WaitWrite]:
            if not isinstance(items, list | tuple) or not items:
                raise ValueError(f"invalid waits {reprlib.repr(items)}: a non-empty list of tarry.Wait")
            conditions = []
            for i, item in enumerate(items):
                if not isinstance(item, Wait):
                    raise ValueError(f"condition {i}: {reprlib.repr(item)} is not a tarry.Wait")
                conditions.append({"event": item.event, "match": item.match, "if_exp": item.if_exp, "key": item.key})
            return waits.group(sid, kind, conditions, trigger=x.trigger_json(), now=x.now(), **options)

        return build

    async def invoke(
        self, step_id: str, function: Callable[..., Any] | str, data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any:  # fmt: skip
        """Start another function of the app with ``data``, wait for it, and return its output.

        A child that fails (or is cancelled, or outlives ``timeout``) raises ``StepError``."""
        x = self._x
        child = x.engine.registry.function_id(function)
        sid, row = x.lookup(step_id)
        if row is None:
            now = x.now()
            [event] = x.engine.new_events(Event("tarry/function.invoked", data))
            event = dataclasses.replace(event, only_function=child)
            wait = waits.wait_for_invoke(sid, event.id, timeout, now)
            step = StepWrite(sid, "invoke", StepStatus.WAITING, 0, None, None, now)
            await x.park(Intent(RunStatus.WAITING, [step], waits=[wait], events=[event]))
        if row.status == StepStatus.FAILED:
            raise StepError(sid, "WaitTimeoutError", f"function {child!r} did not finish within the timeout")
        if row.status != StepStatus.COMPLETED:
            await x.park(Intent(RunStatus.WAITING))
        done = _serde.loads(row.output)
        if done["name"] == "tarry/function.cancelled":
            raise StepError(sid, "Cancelled", f"the run of {child!r} was cancelled")
        if "error" in done["data"]:
            raise _step_error(sid, done["data"]["error"])
        return done["data"].get("output")

    async def resume_url(
        self, step_id: str, *, timeout: Duration = "24h", payload: dict[str, Any] | None = None,
        redirect_url: str | None = None,
    ) -> ResumeHandle:  # fmt: skip
        """Make a single-use resume URL that ``wait_for_resume`` waits on; it expires after ``timeout``."""
        x = self._x
        timeout_ms = to_ms(timeout, what="timeout")
        if payload is not None and not isinstance(payload, dict):
            raise ValueError(f"invalid payload {payload!r}: a JSON object (a dict) or None")
        payload_json = None if payload is None else _serde.dumps_field(payload, "payload")
        waits.check_redirect_url(redirect_url)
        sid, row = x.lookup(step_id)
        token = signing.derive_token(x.engine.signing_key, x.run_id, sid)
        if row is None or row.status != StepStatus.COMPLETED:
            now = x.now()
            info: dict[str, Any] = {"expires_at": now + timeout_ms, "redirect_url": redirect_url}
            handle = HandleWrite(waits.token_hash(token), sid, now + timeout_ms, payload_json, redirect_url)
            x.begin()
            try:
                await self._write(StepWrite(sid, "resume_url", StepStatus.COMPLETED, 1, _serde.dumps(info), None,
                                            now, now), handle=handle)  # fmt: skip
            finally:
                x.end()
        else:
            info = _serde.loads(row.output)
        path = f"/resume/{token}"
        expires_at = _clock.to_datetime(info["expires_at"])
        assert expires_at is not None
        url = f"{x.engine.base_url}{path}" if x.engine.base_url else path
        return ResumeHandle(token, url, expires_at, info["redirect_url"])

    async def wait_for_resume(self, step_id: str, handle: ResumeHandle, *, on_timeout: str = "continue") -> Any:
        """Park until the handle's URL is called; returns ``payload`` merged with ``"event"`` (the caller's data)."""
        if not isinstance(handle, ResumeHandle):
            raise ValueError(f"invalid handle {handle!r}: pass what ctx.step.resume_url returned")
        expires_at = _clock.to_ms(handle.expires_at)
        return await self._wait(step_id, "wait_for_resume", lambda sid: waits.wait_for_resume(
            sid, waits.token_hash(handle.token), expires_at, on_timeout))  # fmt: skip

    async def _wait(self, step_id: str, kind: str, build: Callable[[str], WaitWrite | list[WaitWrite]]) -> Any:
        """A wait step: its recorded result on replay; else ``build(recorded id)`` registers it.

        The options are checked and turned into index rows only when the wait is first reached,
        never on a replay that already has its result.
        """
        x = self._x
        sid, row = x.lookup(step_id)
        if row is not None and row.status == StepStatus.COMPLETED:
            return _serde.loads(row.output)
        if row is not None and row.status == StepStatus.FAILED:
            error = _serde.loads(row.error)
            if error is not None and error.get("name") != WaitTimeoutError.__name__:
                raise _step_error(sid, error)  # its result was over the limit
            raise WaitTimeoutError(f"{kind} {sid!r} timed out")
        if row is None:
            wait = build(sid)
            step = StepWrite(sid, kind, StepStatus.WAITING, 0, None, None, x.now())
            await x.park(Intent(RunStatus.WAITING, [step], waits=wait if isinstance(wait, list) else [wait]))
        await x.park(Intent(RunStatus.WAITING))

    # -- bridging for plain def functions ------------------------------------

    def _bridge(self, name: str, call: Callable[[Step], Coroutine[Any, Any, T]]) -> T:
        loop = self._x.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError(
                f"ctx.step.{name}_sync blocks, so it is only for plain def functions; use await ctx.step.{name}"
            )
        return asyncio.run_coroutine_threadsafe(call(self), loop).result()

    run_sync = sync_twin(run)
    sleep_sync = sync_twin(sleep)
    sleep_until_sync = sync_twin(sleep_until)
    send_event_sync = sync_twin(send_event)
    wait_for_event_sync = sync_twin(wait_for_event)
    wait_for_all_sync = sync_twin(wait_for_all)
    wait_for_any_sync = sync_twin(wait_for_any)
    collect_events_sync = sync_twin(collect_events)
    invoke_sync = sync_twin(invoke)
    resume_url_sync = sync_twin(resume_url)
    wait_for_resume_sync = sync_twin(wait_for_resume)


def _is_control(exc: BaseException) -> bool:
    """Tarry's own signals, and the cancellation of the run's task itself, pass through a step body."""
    if isinstance(exc, Park | Stop):
        return True
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0


async def _call(x: Execution, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a step body: coroutine functions on the loop, plain ones in a thread.

    A thread cannot be cancelled: the execution keeps its future, so a run that parks or ends
    while it runs waits for it (``Execution.settle``), and its result, never recorded, is dropped.
    """
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    body = x.loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, fn, *args, **kwargs))
    value = await x.track_body(body)
    if inspect.isawaitable(value):
        value = await value
    return value


def _step_error(step_id: str, error: dict[str, str]) -> StepError:
    """The ``StepError`` of a failed step's recorded error: the same on every replay."""
    return StepError(step_id, error["name"], error["message"], traceback=error.get("traceback"))


def _received(output: dict[str, Any]) -> Event:
    return Event._received(output["name"], output["data"], output["id"], output["ts"], output.get("key"),
                           output.get("v"))  # fmt: skip


def _aware(when: datetime | str) -> datetime:
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            raise ValueError(f"invalid sleep_until time {when!r}: use an ISO 8601 text with an offset") from None
    if not isinstance(when, datetime):
        raise ValueError(f"invalid sleep_until time {when!r}: use an aware datetime or an ISO 8601 text")
    if when.tzinfo is None:
        raise ValueError(f"invalid sleep_until time {when.isoformat()!r}: a naive datetime; give it a timezone")
    return when


__all__ = ["Park", "Step", "Stop", "current_attempt", "current_step"]
