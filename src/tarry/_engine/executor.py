"""Execute one claimed run until it finishes, fails, parks or is cancelled.

The function is replayed from the top: recorded steps return their results,
the first unrecorded step does real work. When every step still running is
parked, the function is unwound (``Park``) and its coroutine dropped; the
park, the finish and their system events are each one store transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

from tarry import _serde
from tarry._context import Context
from tarry._engine import runlog
from tarry._engine.engine import Engine
from tarry._engine.execution import STORE_FAILED, Execution, Park, Stop
from tarry._errors import StoreError, describe
from tarry._model import RunStatus
from tarry._sdk import sync as sdk_sync
from tarry._store.base import ClaimedRun, Control
from tarry._store.base import Park as Parked
from tarry._store.lifecycle import cancelled

log = logging.getLogger("tarry.worker")

#: how long a run waits before it is tried again after its store failed under it
BACKOFF_S = 1.0

#: loop turns given to sibling steps (asyncio.gather) to reach their own steps before a run parks
SETTLE_TURNS = 3


async def execute(engine: Engine, claimed: ClaimedRun, owner: str, threads: Executor) -> None:
    """Execute the run; if the store fails under it, hand it back to run again after a pause.

    Only a ``StoreError`` is the store's: anything else raised here is a fault that would
    recur on every retry (a bug, a value nothing can store), so the run fails once, naming it.
    """
    try:
        await _execute(engine, claimed, owner, threads)
    except asyncio.CancelledError:
        raise
    except StoreError:
        log.warning("run %s: the store failed; retrying the run in %s s", claimed.id, BACKOFF_S, exc_info=True)
        await _back_off(engine, claimed.id, owner)
    except Exception as exc:
        log.error("run %s of %s: executing it failed; the run fails", claimed.id, claimed.function_id, exc_info=True)
        error = describe(exc)
        error["message"] = f"Tarry could not execute the run: {error['message']}"
        try:
            await _end(engine, claimed, owner, RunStatus.FAILED, None, error)
        except StoreError:
            log.warning("run %s: the store failed; retrying the run in %s s", claimed.id, BACKOFF_S, exc_info=True)
            await _back_off(engine, claimed.id, owner)


async def _back_off(engine: Engine, run_id: str, owner: str) -> None:
    """Park the run until ``BACKOFF_S`` from now; keep trying while the store refuses."""
    delay = 0.05
    while True:
        try:
            await engine.store.back_off(run_id, owner, engine.clock.now_ms() + int(BACKOFF_S * 1000))
        except StoreError:
            log.warning("run %s: cannot hand the run back yet; trying again in %.2f s", run_id, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            engine.wake()
            return


async def _execute(engine: Engine, claimed: ClaimedRun, owner: str, threads: Executor) -> None:
    spec = engine.registry.functions.get(claimed.function_id)
    if spec is None:  # maybe synced from an Inngest SDK by another process since this one last looked
        await sdk_sync.load(engine)
        spec = engine.registry.functions.get(claimed.function_id)
    if spec is None:
        error = {"name": "FunctionNotFound",
                 "message": f"no function {claimed.function_id!r} is registered in this app"}  # fmt: skip
        await _end(engine, claimed, owner, RunStatus.FAILED, None, error)
        return
    if not claimed.steps:  # its first execution (or one that recorded nothing before it was handed back)
        runlog.started(claimed.id, claimed.function_id, claimed.event.name)
    while True:
        execution = Execution(engine, claimed, spec, owner)
        outcome, value = await _drive(execution, threads)
        if outcome == "park":
            status = (
                RunStatus.WAITING
                if any(i.status == RunStatus.WAITING for i in execution.intents)
                else RunStatus.SLEEPING
            )
            intents = execution.intents
            result, fresh = await engine.store.park(
                claimed.id, owner, status, [s for i in intents for s in i.steps], [t for i in intents for t in i.timers],
                [w for i in intents for w in i.waits], [e for i in intents for e in i.events], engine.clock.now_ms(),
            )  # fmt: skip
            if result == Parked.AGAIN:
                claimed = replace(claimed, steps=fresh)
                continue
            if result == Parked.CANCEL:
                await _end(engine, claimed, owner, RunStatus.CANCELLED, None, cancelled(None))
            engine.wake()
            return
        if outcome == Control.LOST:
            return
        if outcome == STORE_FAILED:
            await _back_off(engine, claimed.id, owner)
            return
        await _end(engine, claimed, owner, *_outcome(spec.id, outcome, value))
        return


async def _end(engine: Engine, claimed: ClaimedRun, owner: str, status: RunStatus, output: str | None,
               error: dict[str, str] | None) -> None:  # fmt: skip
    """Finish the run, and say so in the ``tarry.runs`` log."""
    await _finish(engine, claimed.id, owner, status, output, error)
    runlog.ended(claimed.id, claimed.function_id, status, engine.clock.now_ms() - claimed.created_at, error)


def _outcome(function_id: str, outcome: str, value: Any) -> tuple[RunStatus, str | None, dict[str, str] | None]:
    """How a run that did not park ends: its status, output (JSON) and error."""
    if outcome == Control.CANCEL:
        return RunStatus.CANCELLED, None, cancelled(None)
    if outcome == RunStatus.FAILED:
        return RunStatus.FAILED, None, value
    try:
        output, size = _serde.dumps_sized(value)
    except (TypeError, ValueError) as exc:  # the user's value: the run fails once, never retried
        message = f"function {function_id!r} returned a value that cannot be stored as JSON: {exc}"
        return RunStatus.FAILED, None, {"name": type(exc).__name__, "message": message}
    too_big = _serde.too_big(f"function {function_id!r} returned", size)
    if too_big is not None:
        return RunStatus.FAILED, None, {"name": "ValueError", "message": too_big}
    return RunStatus.COMPLETED, output, None


async def _drive(x: Execution, threads: Executor) -> tuple[str, Any]:
    """Run the function until it returns, raises, or every live step is parked."""
    ctx = Context(x)
    fn = x.spec.fn
    task: asyncio.Future[Any]
    if x.spec.is_async:
        main = asyncio.ensure_future(fn(ctx))
        x.tasks.add(main)  # known from the start: its steps need not add it (nor a callback to forget it)
        task = main
    else:
        task = asyncio.ensure_future(x.loop.run_in_executor(threads, contextvars.copy_context().run, fn, ctx))
    task.add_done_callback(lambda _: x.changed.set())
    stopping = False
    try:
        while not task.done():
            x.changed.clear()
            if x.intents and x.active == 0:
                for _ in range(SETTLE_TURNS):
                    await asyncio.sleep(0)
                if x.active == 0 and not task.done() and not x.park_future.done():
                    x.park_future.set_exception(Park())
                    break
                continue
            await x.changed.wait()  # a step began, ended or parked, or the function returned
        value = await task
    except Park:
        return ("park", None) if x.stop_reason is None else (x.stop_reason, None)
    except Stop as stop:
        return stop.reason, None
    except BaseException as exc:  # the function raised: the run fails without retries
        current = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and current is not None and current.cancelling():
            task.cancel()  # the worker is stopping: the run goes back to the queue
            stopping = True
            raise
        if x.stop_reason is not None:
            return x.stop_reason, None
        log.debug("run %s of %s failed", x.run_id, x.spec.id, exc_info=True)
        return RunStatus.FAILED, describe(exc, traceback=True)
    finally:
        if x.park_future.done():
            x.park_future.exception()  # retrieved: no "never retrieved" warning
        await x.settle(wait=not stopping)  # no step of the run is left running when it parks or ends
    if x.stop_reason is not None:
        return x.stop_reason, None
    return RunStatus.COMPLETED, value


async def _finish(engine: Engine, run_id: str, owner: str, status: str, output: str | None,
                  error: dict[str, str] | None) -> None:  # fmt: skip
    woke = await engine.store.finish(run_id, owner, status, output, error, engine.clock.now_ms())
    engine.cancelling.discard(run_id)
    if woke:
        engine.wake()  # its system events started or resumed runs
    else:
        engine.progress.fire()
