"""The in-process worker: claims due runs, executes them, fires timers, keeps its lease.

One loop turn is one store transaction (``tick``): deliver delayed events
that came due, fire due timers, claim runs for free slots. Between turns it
sleeps until woken (in-process, or by the store's ``watch`` for work another
process stored), until its next timer, or for one poll interval (the
guarantee, should a wake-up be lost). A parked run holds nothing here.
Every store call of the loop survives a ``StoreError`` and is tried again; if
the loop ever ends other than by ``stop``, it says so (``ended``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from tarry import _ids
from tarry._durations import to_ms
from tarry._engine.engine import Engine
from tarry._engine.executor import execute
from tarry._errors import StoreError
from tarry._sdk import sync as sdk_sync
from tarry._store.base import ClaimedRun

log = logging.getLogger("tarry.worker")

POLL_S = 0.5
#: faults in a row, other than the store's, after which the loop gives up (about five seconds)
MAX_FAULTS = 10
#: tries of the first heartbeat and recovery in ``start`` before the store's error is raised
START_TRIES = 5
COALESCE_S = 0.0
DEFAULT_LEASE_MS = 15_000  # docs/postgres.md: how to choose it


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def lease_ms() -> int:
    """How long a worker may miss heartbeats before its runs go to another (``TARRY_WORKER_LEASE``)."""
    text = os.environ.get("TARRY_WORKER_LEASE")
    return DEFAULT_LEASE_MS if not text else max(100, to_ms(text, what="TARRY_WORKER_LEASE"))


class Worker:
    def __init__(self, engine: Engine, concurrency: int = 64) -> None:
        self.engine = engine
        self.concurrency = concurrency
        self.owner = "w-" + _ids.new_id(_wall_ms())
        self.lease_ms = lease_ms()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="tarry-function")
        self._loop_task: asyncio.Task[None] | None = None
        self._reserved = 0  # slots promised to claims in flight (a turn's, or a send's)
        self._backlog = True  # queued runs may be left that no claim took: a freed slot should look
        self._stopping = False
        #: what ended the loop on its own (a fault), or ``None`` once ``stop`` ended it
        self.ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def wake(self) -> None:
        """Work may have been made: take a turn now."""
        self._backlog = True
        self._wake.set()

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        """Announce this worker, requeue the runs of workers whose lease ran out, store the schedules of
        this code, then loop."""
        delay = 0.05
        engine = self.engine
        for tries_left in range(START_TRIES - 1, -1, -1):
            try:
                await self._beat()
                if engine.registry.functions:  # an app with no functions is a client: it leaves schedules be
                    await engine.store.sync_schedules(engine.schedules(), engine.clock.now_ms())
                break
            except StoreError:
                if not tries_left:
                    raise
                log.warning("worker %s: the store failed while starting; trying again in %.2f s", self.owner, delay,
                            exc_info=True)  # fmt: skip
                await asyncio.sleep(delay)
                delay *= 2
        engine.store.watch()  # work stored by other processes wakes us, not only the poll
        self._loop_task = asyncio.create_task(self._run(), name=f"tarry-worker-{self.owner}")
        self._loop_task.add_done_callback(self._loop_ended)

    async def _beat(self) -> int:
        """Renew this worker's lease and requeue the runs of expired ones; how many were requeued."""
        await self.engine.store.heartbeat(self.owner, _wall_ms())
        recovered = await self.engine.store.recover(_wall_ms() - self.lease_ms, self.engine.clock.now_ms())
        await sdk_sync.load(self.engine)  # functions another process synced from an Inngest SDK since
        return recovered

    async def _run(self) -> None:
        engine, store = self.engine, self.engine.store
        next_beat = _wall_ms() + self.lease_ms // 3
        faults = 0  # faults in a row that are not the store's
        while True:
            self._wake.clear()
            free = self.free()
            self._reserved += free
            try:
                claimed, next_due = await store.tick(self.owner, free, engine.clock.now_ms())
            except Exception as exc:
                faults = self._fault(exc, faults, "a turn")
                await asyncio.sleep(POLL_S)
                continue
            finally:
                self._reserved -= free
            self._backlog = len(claimed) >= free
            self.adopt(claimed)
            if _wall_ms() >= next_beat:
                try:
                    recovered = await self._beat()
                except Exception as exc:  # the lease is renewed on the next turn: next_beat stays due
                    faults = self._fault(exc, faults, "the heartbeat")
                    await asyncio.sleep(POLL_S)
                    continue
                next_beat = _wall_ms() + self.lease_ms // 3
                if recovered:
                    faults = 0
                    continue
            faults = 0  # a whole turn went through
            if free > 0 and len(claimed) == free:
                continue  # more may be queued
            if next_due is not None and next_due <= engine.clock.now_ms():
                continue
            await engine.clock.wait(self._wake, next_due, POLL_S)
            await asyncio.sleep(COALESCE_S)  # one turn for a burst of wake-ups, not one turn each

    def _fault(self, exc: Exception, faults: int, what: str) -> int:
        """Log a failed store call of the loop; the count of other faults in a row, raising past the limit.

        The store's own failures (a lost connection, a full disk) are retried for as long as they last.
        Any other fault is a bug: it is retried too, logged in full, so that one odd turn does not end
        the worker; only ``MAX_FAULTS`` in a row end the loop (and ``tarry worker`` with status 1)."""
        if isinstance(exc, StoreError):
            log.warning("worker %s: %s failed; retrying after the poll interval", self.owner, what, exc_info=True)
            return faults
        if faults + 1 >= MAX_FAULTS:
            raise exc
        log.error("worker %s: %s failed (%d in a row); retrying after the poll interval", self.owner, what,
                  faults + 1, exc_info=True)  # fmt: skip
        return faults + 1

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        fault = asyncio.CancelledError("the loop was cancelled") if task.cancelled() else task.exception()
        if fault is None:
            fault = RuntimeError("the loop returned")
        log.critical("worker %s: its loop ended (%s: %s); this process claims no more runs and fires no timers",
                     self.owner, type(fault).__name__, fault, exc_info=fault)  # fmt: skip
        if not self.ended.done():
            self.ended.set_result(fault)

    def free(self) -> int:
        """Slots neither running a run nor promised to a claim in flight."""
        return 0 if self._stopping else max(0, self.concurrency - len(self._tasks) - self._reserved)

    def reserve(self) -> tuple[str, int] | None:
        """Promise this worker's free slots to a claim made elsewhere (a send's); ``release`` after."""
        free = self.free()
        if free == 0:
            return None
        self._reserved += free
        return self.owner, free

    def release_reserved(self, claim: tuple[str, int], claimed: list[ClaimedRun]) -> None:
        """The claim of ``reserve`` is settled: execute the runs it claimed, free the other slots."""
        self._reserved -= claim[1]
        if len(claimed) >= claim[1]:
            self._backlog = True
        elif self._backlog:  # slots come back that a turn meanwhile could not use
            self._wake.set()
        self.adopt(claimed)

    def adopt(self, claimed: list[ClaimedRun]) -> None:
        """Execute runs claimed for this worker (when stopping, ``stop`` hands them back instead)."""
        engine = self.engine
        if self._stopping:
            return
        for run in claimed:
            task = asyncio.create_task(execute(engine, run, self.owner, self._threads), name=f"tarry-run-{run.id}")
            self._tasks.add(task)
            task.add_done_callback(self._done)
        if claimed:
            engine.progress.fire()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker %s: a run's execution crashed", self.owner, exc_info=task.exception())
        if self._backlog:  # a slot is free and runs may be queued for it
            self._wake.set()
        self.engine.progress.fire()

    async def stop(self) -> None:
        """Stop claiming, drop executions in flight and hand their runs back (requeued)."""
        self._stopping = True
        if not self.ended.done():
            self.ended.set_result(None)
        if self._loop_task is not None:
            while not self._loop_task.done():
                self._loop_task.cancel()
                await asyncio.wait({self._loop_task}, timeout=0.1)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = time.monotonic() + 5
        while self._reserved > 0 and time.monotonic() < deadline:  # a send's claim still in flight
            await asyncio.sleep(0.01)
        await self.engine.store.release(self.owner, self.engine.clock.now_ms())
        self._threads.shutdown(wait=False, cancel_futures=True)
