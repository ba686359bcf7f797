"""The engine's shared parts: store, functions, clock, and the building of events.

The app owns one Engine; steps, the executor and the worker reach the store
through it. It holds no run state of its own beyond in-process hints.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tarry import _expressions, _ids, _serde
from tarry._clock import Clock, to_datetime
from tarry._engine import signing
from tarry._engine.metrics import Metrics
from tarry._engine.signal import Signal
from tarry._engine.waits import wait_for_cancel_on
from tarry._errors import ExpressionError, InvalidEventError
from tarry._flow import NO_FLOW, Filter, Flow
from tarry._function import Registry
from tarry._model import Buffer, Event, Run, RunStatus, Wait
from tarry._store.base import NewEvent, ScheduleWrite, Store, WaitRow, WaitWrite
from tarry._store.sql_waits import GROUPS

if TYPE_CHECKING:
    from tarry._engine.worker import Worker
    from tarry._sdk.driver import Calls

DEDUP_WINDOW_MS = 24 * 3600 * 1000
log = logging.getLogger("tarry.engine")


class Engine:
    """Also the store's ``Hooks``: the rules it calls back inside its transactions, each total for
    whatever an event holds (a computation that fails for one event is "no match", not an exception)."""

    def __init__(self, store: Store, registry: Registry, clock: Clock, signing_key: bytes,
                 base_url: str | None) -> None:  # fmt: skip
        self.store = store
        self.registry = registry
        self.clock = clock
        self.signing_key = signing_key
        self.base_url = base_url
        self.worker: Worker | None = None
        self.progress = Signal()  # fired when anything may have changed
        self.cancelling: set[str] = set()  # runs this process asked to cancel while they ran
        self.metrics = Metrics()
        self.sdk: Calls | None = None  # the calls to Inngest SDKs, made on first use
        self.sdk_version = ""  # of the SDK syncs this process has loaded (Store.sdk_apps_version)
        self.sdk_follower: asyncio.Future[None] | None = None  # without a worker: looks at the SDK syncs
        self.app_id = ""  # the Tarry app's id: an SDK invokes its functions as "<app id>-<function id>"

    def route(self, name: str, exclude: str | None, only: str | None) -> list[tuple[str, tuple[Filter, ...]]]:
        return self.registry.route(name, exclude, only)

    def event_key(self, shape: str, event: dict[str, Any]) -> str | None:
        return _expressions.event_key_for_shape(shape, event)

    def accepts(self, if_exp: str, trigger: dict[str, Any], event: dict[str, Any],
                budget: _expressions.Budget | None = None) -> bool:  # fmt: skip
        try:
            compiled = _expressions.compile_expression(if_exp)
        except ExpressionError:  # stored by code that has changed since: it matches nothing now
            return False
        return _expressions.evaluate(compiled, trigger, event, budget)

    def flow(self, function_id: str) -> Flow:
        spec = self.registry.functions.get(function_id)
        return spec.flow if spec is not None else NO_FLOW

    @property
    def gated(self) -> bool:
        return self.registry.gated

    def knows(self, function_id: str) -> bool:
        return function_id in self.registry.functions

    def widest(self, partition: str) -> int:
        return max((spec.flow.limit_of(partition) or 0 for spec in self.registry.functions.values()), default=0)

    def cancel_waits(self, function_id: str, trigger: dict[str, Any]) -> list[WaitWrite]:
        spec = self.registry.functions.get(function_id)
        if spec is None or not spec.cancel_on:
            return []
        now = self.clock.now_ms()
        waits = []
        for i, item in enumerate(spec.cancel_on):
            try:
                waits.append(wait_for_cancel_on(i, item, trigger, now))
            except Exception:  # the trigger's values cannot be compared: this cancel_on can match no event
                log.warning("function %s: cancel_on [%d] can match no event for this trigger", function_id, i,
                            exc_info=True)  # fmt: skip
                try:
                    waits.append(replace(wait_for_cancel_on(i, item, {}, now), match_key=_expressions.NEVER))
                except Exception:  # not even without the trigger: the run starts without this listener
                    log.exception("function %s: cancel_on [%d] cannot listen for this run", function_id, i)
        return waits

    def schedules(self) -> list[ScheduleWrite]:
        """The schedules of this code: one per function and Cron trigger."""
        return [ScheduleWrite(spec.id, cron.expression, cron.timezone)
                for spec in self.registry.functions.values() for cron in spec.trigger.crons]  # fmt: skip

    def dedup_since(self) -> int:
        return self.clock.now_ms() - DEDUP_WINDOW_MS

    def wake(self) -> None:
        """New work may exist: wake the worker and everyone waiting on progress."""
        if self.worker is not None:
            self.worker.wake()
        self.progress.fire()

    def cancel_requested(self, run_id: str) -> bool:
        return run_id in self.cancelling

    def new_events(self, events: object) -> list[NewEvent]:
        """Validate what was sent and give each event its engine id; nothing is stored here."""
        items: Sequence[object]
        if isinstance(events, list | tuple):
            items = events
        elif isinstance(events, Event | Mapping):
            items = [events]
        else:
            raise InvalidEventError(f"send takes a tarry.Event or a list of them, got {type(events).__name__}")
        now = self.clock.now_ms()
        new = []
        for index, item in enumerate(items):
            try:
                if type(item) is not Event:  # a dict to build one from, or something that is none
                    if isinstance(item, Mapping):
                        item = Event.from_json(dict(item))
                    if not isinstance(item, Event):
                        raise InvalidEventError(f"an event must be a tarry.Event, got {type(item).__name__}")
                data = item._validate()  # again: its data may have changed since it was built
            except InvalidEventError as exc:
                where = f"event [{index}] of the batch: " if len(items) > 1 else ""
                raise InvalidEventError(where + str(exc)) from None
            new.append(NewEvent(_ids.new_id(now), item.name, data, item.key, item.v, item.id,
                                item.ts if item.ts is not None else now, now))  # fmt: skip
        return new

    def system_events(self, run: Run, status: str, error: dict[str, str] | None, output: Any,
                      now: int) -> list[NewEvent]:  # fmt: skip
        """``tarry/function.*`` events for a run that ended with ``status`` at ``now``: delivered with the
        ending, in its transaction (a later time would leave them to the worker's next turn)."""
        data: dict[str, Any] = {
            "function_id": run.function_id,
            "run_id": run.id,
            "event": {"name": run.event.name, "data": run.event.data, "id": run.event.id, "ts": run.event.ts},
        }
        if status == RunStatus.COMPLETED:
            names, data["output"] = ["tarry/function.finished"], output
        elif status == RunStatus.FAILED:
            names, data["error"] = ["tarry/function.failed", "tarry/function.finished"], error
        else:
            names, data["error"] = ["tarry/function.cancelled"], error
        spec = self.registry.functions.get(run.function_id)
        if spec is not None and spec.sdk is not None:  # the SDK's own names too, its on_failure listens for them
            names += [name.replace("tarry/", "inngest/", 1) for name in names]
            error_data = data.get("error")
            if isinstance(error_data, dict) and "traceback" in error_data:  # the SDK's name for it
                data["error"] = {**error_data, "stack": error_data["traceback"]}
        try:
            body = _serde.dumps(data)
        except (TypeError, ValueError, RecursionError):  # the trigger's data, read back, cannot be written again
            data["event"]["data"] = None
            if "output" in data:
                data["output"] = None
            body = _serde.dumps(data)
        return [NewEvent(_ids.new_id(now), name, body, None, None, None, now, now, exclude_function=run.function_id)
                for name in names]  # fmt: skip

    async def open_waits(self, run_id: str | None = None, limit: int = 100, before: int | None = None) -> list[Wait]:
        """The open waits, newest first, with each resume handle's URL derived again (``before``: only those
        whose ``seq`` is below it, the next page)."""
        return [self._wait(row) for row in await self.store.list_waits(run_id, limit, before)]

    async def open_buffers(self, function_id: str | None = None, limit: int = 100,
                           before: int | None = None) -> list[Buffer]:  # fmt: skip
        """The open debounce bursts and batches, newest first (``before``: ids below it, the next page)."""
        return await self.store.list_buffers(function_id, limit, before)

    def _wait(self, row: WaitRow) -> Wait:
        match: dict[str, Any] = {}
        if row.shape and row.kind != "resume":
            paths = row.shape.split("|")
            values = _serde.loads(row.match_key) if row.match_key.startswith("[") else None
            match = dict(zip(paths, values, strict=True)) if values is not None else {row.shape: row.match_key}
        url = None
        if row.handle_step is not None:
            path = "/resume/" + signing.derive_token(self.signing_key, row.run_id, row.handle_step)
            url = (self.base_url or "") + path
        since = to_datetime(row.created_at)
        assert since is not None
        names = [] if row.kind == "resume" else row.names
        condition = row.condition if row.kind in GROUPS else None
        remaining = row.take if row.kind == "collect_events" else None
        return Wait(row.run_id, row.function_id, row.step_id, row.kind, names, match, row.if_exp, since,
                    to_datetime(row.due_at), url, row.redirect_url, condition, remaining, seq=row.seq)  # fmt: skip
