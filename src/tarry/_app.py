"""``tarry.Tarry``: the registry of functions, owner of the store and worker, and every client call.

Client calls are async; each has a ``_sync`` twin that only bridges to the
app's event loop (or, before the app is started, opens a short-lived client).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from tarry import _serde
from tarry._clock import Clock, SystemClock
from tarry._cron import Cron
from tarry._engine import bulk, views
from tarry._engine.engine import Engine
from tarry._engine.signing import load_signing_key
from tarry._engine.waits import check_cancel_on, token_hash
from tarry._engine.worker import Worker
from tarry._filters import check_limit, run_query
from tarry._flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle, Timeouts
from tarry._function import CancelOn, Registry, Trigger, failure_spec, make_spec
from tarry._model import DeadLetter, Event, Run, RunStatus
from tarry._sdk import sync as sdk_sync
from tarry._store import check_url, open_store, redact_url
from tarry._store.base import Cancelled, NewEvent, RunQuery, Sent
from tarry._twins import sync_twin

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DATABASE_URL = "sqlite:///.tarry/tarry.db"
#: how often ``worker_died`` looks for a worker while none runs (before start, after close)
WORKER_DEATH_POLL_S = 0.1


class Tarry:
    """A Tarry app: its functions, its store, and (when started with one) its worker."""

    def __init__(
        self,
        app_id: str,
        *,
        database_url: str | None = None,
        clock: Clock | None = None,
        base_url: str | None = None,
        concurrency: int = 64,
    ) -> None:
        if not isinstance(app_id, str) or not app_id.strip():
            raise ValueError(f"invalid app id {app_id!r}: a non-empty string")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"invalid concurrency {concurrency!r}: an int >= 1")
        self.id = app_id
        # the one rule: database_url= in code, else TARRY_DATABASE_URL, else the default (a command's
        # --database-url then overrides it, saying so: _cli.with_database_url)
        from_env = os.environ.get("TARRY_DATABASE_URL")
        self.database_url = database_url or from_env or DEFAULT_DATABASE_URL
        self._database_from = (
            "the app's database_url=" if database_url else "TARRY_DATABASE_URL" if from_env else "the default"
        )
        check_url(self.database_url)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.base_url = (base_url or os.environ.get("TARRY_BASE_URL") or "").rstrip("/") or None
        self.concurrency = concurrency
        self._registry = Registry()
        self._signing_key: str | None = None  # a key given by the command that runs the app (tarry serve)
        self._engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "stopped"  # stopped -> starting -> started -> closing -> stopped
        self._state_lock = threading.Lock()
        self._started = threading.Event()  # set whenever the state is not in transition
        self._started.set()

    def __repr__(self) -> str:
        return f"<Tarry {self.id!r} {redact_url(self.database_url)!r}>"

    # -- functions ----------------------------------------------------------

    def function(
        self,
        trigger: str | Trigger | Cron | Sequence[str | Trigger | Cron],
        *,
        id: str | None = None,  # noqa: A002 - the contract's name
        retries: int = 4,
        cancel_on: list[CancelOn] | None = None,
        on_failure: Callable[..., Any] | None = None,
        concurrency: Concurrency | list[Concurrency] | None = None,
        throttle: Throttle | None = None,
        rate_limit: RateLimit | None = None,
        debounce: Debounce | None = None,
        batch: Batch | None = None,
        priority: Priority | None = None,
        idempotency: str | None = None,
        singleton: Singleton | None = None,
        timeouts: Timeouts | None = None,
    ) -> Callable[[F], F]:
        """Register a function that starts on ``trigger``; the function itself is returned unchanged.

        ``trigger``: an event name, a ``prefix*``, a ``tarry.Trigger(name, if_exp=...)`` filter, a
        ``tarry.Cron`` schedule, or a list of them. ``on_failure``: a function (sync or async) run once for each failed run, as a run of
        its own whose function id is ``"<id>-failure"`` and whose ``ctx.event`` is the failed run's
        ``tarry/function.failed`` event. The flow-control options (``concurrency`` ... ``timeouts``)
        are those of API §9. Each bad option raises ``ValueError`` (``tarry.ExpressionError`` for an
        expression) and registers nothing."""
        options = {"concurrency": concurrency, "throttle": throttle, "rate_limit": rate_limit, "debounce": debounce,
                   "batch": batch, "priority": priority, "idempotency": idempotency, "singleton": singleton,
                   "timeouts": timeouts}  # fmt: skip
        flow = {name: value for name, value in options.items() if value is not None}

        def register(fn: F) -> F:
            spec = make_spec(fn, trigger, id, retries, cancel_on, flow, on_failure)
            for item in spec.cancel_on:
                check_cancel_on(item)
            if on_failure is None:
                self._registry.add(spec)
            else:
                self._registry.add(spec, failure_spec(spec, on_failure))
            return fn

        return register

    @property
    def functions(self) -> list[str]:
        """The ids of the registered functions."""
        return list(self._registry.functions)

    def _describe_functions(self) -> list[dict[str, Any]]:
        """Every registered function as JSON, by id: what ``/api/v1/functions`` and ``tarry functions`` show."""
        return [spec.describe() for _, spec in sorted(self._registry.functions.items())]

    # -- lifecycle ----------------------------------------------------------

    async def start(self, worker: bool = True) -> None:
        """Open the store (creating or migrating its schema) and, with ``worker``, run a worker."""
        await self._start(worker, create=True)

    async def _start(self, worker: bool, *, create: bool) -> None:
        """``start``; without ``create``, open only an existing, up-to-date database and create
        nothing (no database, no schema, no signing key file): the CLI's reading commands."""
        with self._state_lock:
            if self._state != "stopped":
                raise RuntimeError(f"{self!r} is already started")
            self._state = "starting"
            self._started.clear()
        try:
            store = open_store(self.database_url, create=create)
            engine = Engine(store, self._registry, self.clock, b"", self.base_url)
            engine.app_id = self.id
            await store.open(engine)
            try:
                engine.signing_key = load_signing_key(self.database_url, create=create, given=self._signing_key)
                await sdk_sync.load(engine)  # the functions synced from Inngest SDKs, before any worker runs
                if worker:
                    engine.worker = Worker(engine, self.concurrency)
                    await engine.worker.start()
                else:  # no heartbeat here to look at the SDK syncs other processes store
                    engine.sdk_follower = asyncio.ensure_future(sdk_sync.follow(engine))
            except BaseException:
                await store.close()
                raise
        except BaseException:
            with self._state_lock:
                self._state = "stopped"
                self._started.set()
            raise
        with self._state_lock:
            self._loop = asyncio.get_running_loop()
            self._engine = engine
            self._state = "started"
            self._started.set()
        self.clock.attach(self)

    async def close(self) -> None:
        """Stop the worker (runs in flight go back to the queue) and close the store."""
        with self._state_lock:
            engine, self._engine = self._engine, None
            if engine is None:
                return
            self._state = "closing"
            self._started.clear()
        try:
            self.clock.detach(self)
            if engine.worker is not None:
                await engine.worker.stop()
            if engine.sdk_follower is not None:
                engine.sdk_follower.cancel()
                await asyncio.gather(engine.sdk_follower, return_exceptions=True)
            if engine.sdk is not None:
                await engine.sdk.aclose()
            await engine.store.close()
        finally:
            with self._state_lock:
                self._loop = None
                self._state = "stopped"
                self._started.set()

    async def worker_died(self) -> BaseException:
        """Wait until this app's worker stops working on its own and return the fault that ended it.

        Its loop ends only by a fault it cannot retry (store failures it retries), and logs it at
        critical level; ``close`` does not count. Never returns while no worker runs here. A
        process that exists to work (``tarry worker``, the servers) awaits this and exits non-zero.
        """
        while True:
            engine = self._engine
            worker = engine.worker if engine is not None and self._loop is asyncio.get_running_loop() else None
            if worker is not None:
                fault = await asyncio.shield(worker.ended)
                if fault is not None:
                    return fault
            await asyncio.sleep(WORKER_DEATH_POLL_S)  # not started yet, or closed (maybe started again)

    async def __aenter__(self) -> Tarry:
        await self.start(worker=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def engine(self) -> Engine:
        """The started app's engine, for Tarry's own server and CLI; ``RuntimeError`` before ``start``."""
        if self._engine is None:
            raise RuntimeError(f"{self!r} is not started: use 'async with app:' or 'await app.start()'")
        return self._engine

    # -- events -------------------------------------------------------------

    async def send(self, events: Event | list[Event]) -> list[str]:
        """Store events durably (committed before this returns) and return their ids, in order."""
        engine = self.engine
        new = engine.new_events(events)
        if not new:
            return []
        # An app that defines no functions (a script, a web app that only sends) leaves the routing
        # of its events to the workers, which know the functions; any other app routes them itself.
        sent = await self._send(new, bool(self._registry.functions))
        return sent.ids

    async def _send(self, new: list[NewEvent], route: bool) -> Sent:
        """Store (and, with ``route``, deliver) events; the runs they start or wake are claimed in the
        same transaction for this process's worker, which executes them without waiting for its turn."""
        engine = self.engine
        worker = engine.worker
        on_worker_loop = worker is not None and asyncio.get_running_loop() is self._loop
        claim = worker.reserve() if worker is not None and on_worker_loop and route else None
        store_call = asyncio.ensure_future(
            engine.store.send(new, engine.clock.now_ms(), route, engine.dedup_since(), claim)
        )
        if claim is not None:
            assert worker is not None

            def settle(call: asyncio.Future[Sent]) -> None:  # even if our caller is cancelled meanwhile
                ok = not call.cancelled() and call.exception() is None
                worker.release_reserved(claim, call.result().claimed if ok else [])

            store_call.add_done_callback(settle)
        sent = await asyncio.shield(store_call)
        engine.metrics.events_received.inc(len(new))
        if claim is None or len(sent.claimed) >= claim[1] or any(e.ts > engine.clock.now_ms() for e in new):
            engine.wake()  # the queue may hold more, or a delayed event moved the next due time
        else:
            engine.progress.fire()
        return sent

    async def notify(self, key: str, data: dict[str, Any] | None = None) -> list[str]:
        """Send a ``tarry/notify`` event with ``key``; return the ids of the runs it resumed at once."""
        return (await self._notify(key, data)).resumed

    async def _notify(self, key: str, data: dict[str, Any] | None) -> Sent:
        if not isinstance(key, str) or not key:
            raise ValueError(f"invalid key {key!r}: notify needs a non-empty string")
        engine = self.engine
        return await self._send(engine.new_events(Event("tarry/notify", data, key=key)), True)

    async def resume(self, token: str, data: dict[str, Any] | None = None) -> bool:
        """Resume the run waiting on a resume URL's token; False for an unknown, used or expired token."""
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"invalid data {data!r}: a JSON object (a dict) or None")
        if not isinstance(token, str) or not token:
            return False
        engine = self.engine
        data_json = None if data is None else _serde.dumps_field(data, "data")
        accepted = await engine.store.resume(token_hash(token), data_json, engine.clock.now_ms())
        engine.wake()
        return accepted

    # -- runs ---------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run | None:
        """The run with its steps, or None."""
        return await self.engine.store.get_run(run_id)

    async def wait_for_run(self, run_id: str, timeout: float = 30) -> Run:
        """Return the run once it is completed, failed or cancelled; ``TimeoutError`` after ``timeout`` s."""
        engine = self.engine
        engine.store.watch()  # in a client, the worker's progress in another process wakes us
        deadline = time.monotonic() + timeout
        while True:
            run = await engine.store.get_run(run_id)
            if run is None:
                raise LookupError(f"no run with id {run_id!r}")
            if run.status.finished:
                return run
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"run {run_id} is still {run.status.value} after {timeout} s")
            await engine.progress.wait(min(remaining, 0.25))

    async def runs_for_event(self, event_id: str) -> list[Run]:
        """The runs that event started, and the reruns of them (with ``rerun_of`` set), oldest first."""
        return await self.engine.store.runs_for_event(event_id)

    async def list_runs(
        self,
        *,
        function_id: str | None = None,
        status: str | RunStatus | list[str | RunStatus] | None = None,
        limit: int = 100,
        event_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[Run]:
        """Runs, newest first, matching every filter given: of one function, of one status (or any of a
        list), started by one event, created at or after ``created_after`` and before ``created_before``
        (aware datetimes). Bad filters raise ``ValueError`` naming the field."""
        query = run_query(function_id=function_id, status=status, event_id=event_id, created_after=created_after,
                          created_before=created_before)  # fmt: skip
        runs, _ = await self._query_runs(query, check_limit(limit))
        return runs

    async def _query_runs(self, query: RunQuery, limit: int) -> tuple[list[Run], tuple[int, str] | None]:
        """One page of runs and the position after it (None at the end): what every list of runs reads."""
        return await self.engine.store.query_runs(query, limit)

    async def cancel_run(self, run_id: str) -> bool:
        """Cancel a run (a running one at its next step); False when it had already finished."""
        engine = self.engine
        outcome = await engine.store.cancel(run_id, engine.clock.now_ms(), "cancelled by cancel_run")
        if outcome == Cancelled.REQUESTED:
            engine.cancelling.add(run_id)
        engine.wake()
        return outcome != Cancelled.ENDED

    async def rerun(self, run_id: str, *, from_step: str | None = None) -> str:
        """Start a new run of a finished run's function with the same trigger event (and ``ctx.events``);
        returns its id. Its ``rerun_of`` is ``run_id``.

        ``from_step`` (a ``StepRecord.id`` of that run): the finished steps recorded before it keep their
        records (they return their result, or raise their ``StepError``, without running) and the events
        they consumed; a ``resume_url`` always runs anew. Admission (idempotency, rate limit, singleton,
        debounce, batch) is skipped; concurrency, throttle, priority, timeouts and cancel_on apply.
        ``ValueError`` naming what is wrong, and nothing is written, for an unknown or unfinished run, a
        function no longer registered, or an unknown step."""
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"invalid run_id {run_id!r}: a run's id (a non-empty string)")
        if from_step is not None and (not isinstance(from_step, str) or not from_step):
            raise ValueError(f"invalid from_step {from_step!r}: a step id of the run (StepRecord.id) or None")
        engine = self.engine
        new_id = await engine.store.rerun(run_id, from_step, engine.clock.now_ms())
        engine.wake()
        return new_id

    async def cancel_runs(
        self,
        *,
        function_id: str | None = None,
        if_exp: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> int:
        """Cancel every unfinished run matching all the filters given, and return how many (a running one
        is asked to stop at its next step, and counted). ``if_exp`` is CEL over ``event`` (the run's
        trigger); ``created_after`` is inclusive, ``created_before`` exclusive (aware datetimes). At least
        one filter; runs created during the call are left alone. A bad filter raises ``ValueError``
        (``ExpressionError`` for ``if_exp``) and changes nothing. Works a page of runs at a time, each
        page one transaction, so the worker goes on meanwhile."""
        selection = bulk.select("cancel_runs", function_id=function_id, if_exp=if_exp, created_after=created_after,
                                created_before=created_before)  # fmt: skip
        return await bulk.cancel_runs(self.engine, selection)

    async def rerun_runs(
        self,
        *,
        function_id: str | None = None,
        status: str | RunStatus = "failed",
        if_exp: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[str]:
        """Rerun (as ``rerun``) every finished run of ``status`` (``"completed"``, ``"failed"`` or
        ``"cancelled"``) matching all the filters given, and return the new runs' ids, oldest original
        first. The filters are those of ``cancel_runs``, with the same rules; a run whose function this
        app does not register is left out."""
        finished = bulk.finished_status(status)
        selection = bulk.select("rerun_runs", function_id=function_id, if_exp=if_exp, created_after=created_after,
                                created_before=created_before, status=finished)  # fmt: skip
        return await bulk.rerun_runs(self.engine, selection)

    async def _bulk_matching(self, action: str, *, function_id: str | None = None, if_exp: str | None = None,
                             created_after: datetime | None = None, created_before: datetime | None = None,
                             status: str | RunStatus = "failed") -> int:  # fmt: skip
        """How many runs ``cancel_runs`` (``action="cancel"``) or ``rerun_runs`` (``"rerun"``, of ``status``)
        would take now with these filters, checked as they check them; nothing changes."""
        name = f"{action}_runs"
        finished = None if action == "cancel" else bulk.finished_status(status)
        selection = bulk.select(name, function_id=function_id, if_exp=if_exp, created_after=created_after,
                                created_before=created_before, status=finished)  # fmt: skip
        return await bulk.matching(self.engine, selection, action)

    async def _count_runs(self, query: RunQuery) -> dict[str, int]:
        """Runs by status matching ``query``'s function, event and time range (the console's counts)."""
        return await self.engine.store.count_runs(query)

    async def _run_links(self, run: Run) -> tuple[dict[str, str], list[str]]:
        """The child run of each ``invoke`` step (by step id) and the newest reruns of ``run``."""
        store = self.engine.store
        return await views.child_runs(store, run), await views.reruns(store, run.id)

    async def dead_letters(self, *, limit: int = 100, before: int | None = None) -> list[DeadLetter]:
        """Rows the engine set aside after they failed again and again (events, timers, runs), newest
        first; ``before``: only those with a smaller ``id`` (the next page)."""
        check_limit(limit)
        if before is not None and (isinstance(before, bool) or not isinstance(before, int) or before < 1):
            raise ValueError(f"invalid before {before!r}: a dead letter's id (an int >= 1) or None")
        return await self.engine.store.dead_letters(limit, before)

    async def idle(self, timeout: float = 30) -> None:
        """Return once no run can make progress right now (finished, sleeping or waiting)."""
        engine = self.engine
        engine.store.watch()
        deadline = time.monotonic() + timeout
        while await engine.store.has_work(engine.clock.now_ms()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"runs of {self.id!r} are still making progress after {timeout} s")
            await engine.progress.wait(min(remaining, 0.05))

    # -- for the virtual clock ----------------------------------------------

    async def _next_due(self) -> int | None:
        return await self.engine.store.next_due()

    def _wake(self) -> None:
        if self._engine is not None:
            self._engine.wake()

    # -- sync twins ---------------------------------------------------------

    def _bridge(self, name: str, call: Callable[[Tarry], Coroutine[Any, Any, T]]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if not self._started.wait(timeout=60):
            raise TimeoutError(f"{self!r} is still starting or closing after 60 s")
        with self._state_lock:
            loop = self._loop if self._state == "started" else None
        if loop is not None:
            if running is loop:
                raise RuntimeError(f"app.{name}_sync blocks; inside async code use 'await app.{name}(...)'")
            return asyncio.run_coroutine_threadsafe(call(self), loop).result()

        # Not started: a short-lived client of its own, with the same functions, and no worker.
        client = Tarry(self.id, database_url=self.database_url, clock=self.clock, base_url=self.base_url)
        client._registry = self._registry

        async def as_client() -> T:
            await client.start(worker=False)
            try:
                return await call(client)
            finally:
                await client.close()

        if running is None:
            return asyncio.run(as_client())
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, as_client()).result()

    send_sync = sync_twin(send)
    notify_sync = sync_twin(notify)
    resume_sync = sync_twin(resume)
    get_run_sync = sync_twin(get_run)
    wait_for_run_sync = sync_twin(wait_for_run)
    runs_for_event_sync = sync_twin(runs_for_event)
    list_runs_sync = sync_twin(list_runs)
    cancel_run_sync = sync_twin(cancel_run)
    rerun_sync = sync_twin(rerun)
    cancel_runs_sync = sync_twin(cancel_runs)
    rerun_runs_sync = sync_twin(rerun_runs)
    idle_sync = sync_twin(idle)
    dead_letters_sync = sync_twin(dead_letters)
