"""The transactions of a SQL store, shared by SQLite and PostgreSQL.

Each public method is one transaction; its body is a plain function of a
connection, run by the dialect (``_write`` / ``_read``) on a thread of its
own. The dialects differ in their SQL files, in how they open connections and
transactions, and in the locks that order an event against a registration
(``_lock``): SQLite's single writer needs none; PostgreSQL takes advisory locks.

One bad row costs only itself: the events, timers and runs of a worker turn
(and the events of a send) go through ``_each``, where a row whose processing
raises is undone alone, its failure counted, and after ``MAX_FAILURES`` the
row is set aside as a dead letter instead of being retried for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from tarry import _serde
from tarry._errors import describe
from tarry._model import Buffer, DeadLetter, DeadLetterKind, Event, EventRecord, Run, RunStatus
from tarry._store.base import (
    FAR,
    MAX_FAILURES,
    Cancelled,
    ClaimedRun,
    Control,
    Counts,
    Delivery,
    HandleWrite,
    Hooks,
    NewEvent,
    Park,
    RunQuery,
    ScheduleWrite,
    SdkAppRow,
    Sent,
    StepRow,
    StepWrite,
    TimerKind,
    TimerWrite,
    WaitRow,
    WaitWrite,
)
from tarry._store.lifecycle import LifecycleMixin, unstorable
from tarry._store.rows import (
    buffer_from_row,
    dead_letter_from_row,
    event_from_row,
    event_json,
    event_record,
    run_from_row,
)
from tarry._store.sql_waits import Conn, Probe, _rows, _sent_shapes, group_waits

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item of a batch
log = logging.getLogger("tarry.store")
DEAD_LETTER = "DeadLetter"  # the error name of a run set aside


class SQLStore(LifecycleMixin):
    hooks: Hooks
    q: dict[str, str]

    async def _write(self, fn: Callable[..., T], *args: Any, quiet: bool = False) -> T:
        """Run ``fn(connection, *args)`` in one write transaction.

        ``quiet``: the write makes no work for other processes (a worker's own turn, a heartbeat),
        so they need no wake-up."""
        raise NotImplementedError

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` for reading."""
        raise NotImplementedError

    # -- events -----------------------------------------------------------

    async def send(self, events: list[NewEvent], now: int, deliver: bool, dedup_since: int,
                   claim: tuple[str, int] | None = None) -> Sent:  # fmt: skip
        return await self._write(self._send_tx, events, now, deliver, dedup_since, claim)

    def _send_tx(self, c: Conn, events: list[NewEvent], now: int, deliver: bool, dedup_since: int,
                 claim: tuple[str, int] | None) -> Sent:  # fmt: skip
        resumed: list[str] = []
        started: list[str] = []
        self._lock_dedup(c, events)
        ids = self._send(c, events, now, deliver, dedup_since, resumed, started)
        if claim is not None and claim[1] > 0 and (resumed or started):
            return Sent(ids, resumed, self._claim(c, *claim, now)[0])
        return Sent(ids, resumed)

    def _send(self, c: Conn, events: list[NewEvent], now: int, deliver: bool, dedup_since: int | None,
              resumed: list[str] | None = None, started: list[str] | None = None,
              locked: Sequence[str] = ()) -> list[str]:  # fmt: skip
        """Insert (``dedup_since``: deduplicated) and, if due and ``deliver``, deliver each event
        (``locked``: names whose shared locks the caller took already, in a statement before).

        An event whose delivery raises is stored all the same, undelivered: a worker's turn tries it
        again (and sets it aside if it keeps failing); the other events of the batch are delivered.
        Deduplicating callers take ``_lock_dedup`` first, before any other lock of their transaction."""

        def one(event: NewEvent) -> tuple[str, list[str], list[str]]:
            if event.dedup_id is not None and dedup_since is not None:
                row = self._x(c, "find_duplicate", {"dedup_id": event.dedup_id, "since": dedup_since}).fetchone()
                if row is not None:
                    return row["id"], [], []
            woke: list[str] = []
            new: list[str] = []
            self._insert_event(c, event, now, deliver, woke, new)
            return event.id, woke, new

        def failed(event: NewEvent, error: Exception) -> None:
            self._x(c, "insert_event", {**event.__dict__, "delivered": Delivery.PENDING})
            self._failed(c, DeadLetterKind.EVENT, event.id, error, now, event_id=event.id)

        ids = []
        with self._sending(c, [e.name for e in events if deliver and e.ts <= now], locked):
            outcomes = self._each(c, events, one, failed)
        for event, outcome in zip(events, outcomes, strict=True):
            if outcome is None:
                ids.append(event.id)
                continue
            ids.append(outcome[0])
            if resumed is not None:
                resumed.extend(outcome[1])
            if started is not None:
                started.extend(outcome[2])
        return ids

    def _lock_dedup(self, c: Conn, events: list[NewEvent]) -> None:
        """Order this transaction against any other sending one of these dedup ids.

        Without it two senders of one id (a webhook delivered twice at once) both find no duplicate
        under READ COMMITTED and both insert. Held until commit, the lock makes the second's look-up
        run after the first committed, so it sees the first's event. A lock rather than a unique key:
        the window (an id older than it is processed again) stays one ``received_at`` condition."""
        self._lock(c, sorted({"d:" + e.dedup_id for e in events if e.dedup_id is not None}))

    def _insert_event(self, c: Conn, event: NewEvent, now: int, deliver: bool = True,
                      resumed: list[str] | None = None, started: list[str] | None = None) -> int:  # fmt: skip
        due = event.ts <= now and deliver
        delivered = Delivery.DELIVERED if due else Delivery.PENDING
        probes: list[Probe] | None = None
        if due and self._join_statements and _sent_shapes(event.name) is not None:  # its names' locks are held
            _, probes = self._probes(c, event.name, lambda: event_json(event.__dict__))
            params = {
                **event.__dict__,
                "locks": _serde.dumps(self._probe_locks(event.name, probes)),
                "probes": _serde.dumps(probes),
            }
            seq: int = self._x(c, "insert_indexed_event", params).fetchone()["seq"]
        else:
            seq = self._x(c, "insert_event", {**event.__dict__, "delivered": delivered}).fetchone()["seq"]
        if due:  # delivered in this transaction: the row is inserted as delivered already
            found = self._deliver(c, {**event.__dict__, "seq": seq}, now, started, probes)
            if resumed is not None:
                resumed.extend(found)
        return seq

    # -- one bad row costs only itself ------------------------------------

    def _each(self, c: Conn, items: Sequence[I], work: Callable[[I], T],
              failed: Callable[[I, Exception], None]) -> list[T | None]:  # fmt: skip
        """``work(item)`` for each item, in order; an item whose work raises costs only itself: its writes
        are undone, ``failed(item, error)`` records why, and the others go on (their result; None for it).

        First the items run plainly: a savepoint per row is cheap, not free (SQLite copies each page
        a savepoint touches; PostgreSQL opens a subtransaction, two round trips). If one raises, the
        whole transaction fails and the dialect runs it again ``rows_isolated``: then each row runs
        under a savepoint of its own. An error of the database itself (a deadlock, a lost
        connection, a full disk) is no row's fault: it ends the transaction, retried or reported."""
        if not getattr(_rows, "isolated", False):
            return [work(item) for item in items]
        results: list[T | None] = []
        for item in items:
            self._x(c, "savepoint")
            try:
                results.append(work(item))
            except Exception as exc:
                if _database_fault(exc):
                    raise
                self._x(c, "rollback_to_savepoint")
                self._x(c, "release_savepoint")
                self._count_failure(c, failed, item, exc)
                results.append(None)
            else:
                self._x(c, "release_savepoint")
        return results

    def _count_failure(self, c: Conn, failed: Callable[[I, Exception], None], item: I, error: Exception) -> None:
        """``failed(item, error)`` under a savepoint of its own: if even recording the failure fails, the
        row stays as it was (tried again on a later turn) and the others of the batch still go on."""
        self._x(c, "savepoint")
        try:
            failed(item, error)
        except Exception as exc:
            if _database_fault(exc):
                raise
            self._x(c, "rollback_to_savepoint")
            log.exception("recording the failure of a row failed; it is tried again on a later turn")
        self._x(c, "release_savepoint")

    def _failed(self, c: Conn, kind: DeadLetterKind, ref: str, error: Exception, now: int, *,
                event_id: str | None = None, run_id: str | None = None, step_id: str | None = None,
                detail: str | None = None) -> bool:  # fmt: skip
        """Count a failure of one row; True when it reached ``MAX_FAILURES``: the row is set aside now."""
        params = {"kind": kind.value, "ref": ref, "event_id": event_id, "run_id": run_id, "step_id": step_id,
                  "detail": detail, "error": _serde.dumps(describe(error, 2000)), "now": now}  # fmt: skip
        failures: int = self._x(c, "count_failure", params).fetchone()["failures"]
        aside = failures >= MAX_FAILURES
        log.warning("%s %s failed (%d of %d%s): %s", kind.value, ref.replace("\x1f", " "), failures, MAX_FAILURES,
                    "; set aside as a dead letter" if aside else "", describe(error, 2000)["message"])  # fmt: skip
        if aside:
            self._x(c, "set_aside", {"kind": kind.value, "ref": ref, "now": now})
        return aside

    def _deliver(self, c: Conn, row: Any, now: int, started: list[str] | None = None,
                 probes: list[Probe] | None = None) -> list[str]:  # fmt: skip
        """Start the functions the event (a row of ``events``) triggers and resolve the waits it matches
        (``probes``: its index terms, locked and stored with it)."""
        resumed = self._match_waits(c, row, now, probes)  # first: the runs it starts never match their own trigger
        self._start_functions(c, row, now, started)
        return resumed

    def _deliver_due(self, c: Conn, now: int, limit: int) -> int:
        rows = self._x(c, "due_events", {"now": now, "limit": limit}).fetchall()

        def one(row: Any) -> None:
            self._x(c, "mark_delivered", {"seq": row["seq"]})
            self._deliver(c, row, now)

        def failed(row: Any, error: Exception) -> None:
            if self._failed(c, DeadLetterKind.EVENT, row["id"], error, now, event_id=row["id"]):
                self._x(c, "set_event_aside", {"seq": row["seq"]})

        with self._sending(c, [row["name"] for row in rows]):
            self._each(c, rows, one, failed)
        return len(rows)

    # -- runs: claim, steps, park, finish ---------------------------------

    async def tick(self, owner: str, limit: int, now: int) -> tuple[list[ClaimedRun], int | None]:
        return await self._write(self._tick, owner, limit, now, quiet=True)

    def _tick(self, c: Conn, owner: str, limit: int, now: int) -> tuple[list[ClaimedRun], int | None]:
        self._deliver_due(c, now, 1000)
        self._fire_timers(c, now, 1000)
        claimed, again = self._claim(c, owner, limit, now) if limit > 0 else ([], False)
        due = self._x(c, "next_due").fetchone()["due"]
        if again:  # runs were left that the next turn should look at (one that failed to load, say)
            due = now if due is None else min(due, now)
        return claimed, due

    def _claim(self, c: Conn, owner: str, limit: int, now: int) -> tuple[list[ClaimedRun], bool]:
        """Claim up to ``limit`` queued runs, and say whether runs were left that the next turn should look
        at: a run whose rows cannot be loaded is queued again (behind the others), and after
        ``MAX_FAILURES`` ends failed, set aside, without system events (its event is what cannot be read)."""
        rows, again = self._pick(c, owner, limit, now)
        triggers: dict[str, Any] = {}
        steps_of: dict[str, list[StepRow]] = {}
        if rows:  # the rows of every run claimed, read in one query each
            ids = _serde.dumps(sorted({row["event_id"] for row in rows}))
            triggers = {r["id"]: r for r in self._x(c, "events_by_ids", {"ids": ids})}
            for r in self._x(c, "steps_of_runs", {"run_ids": _serde.dumps([row["id"] for row in rows])}):
                steps_of.setdefault(r["run_id"], []).append(_step_row(r))

        def one(row: Any) -> ClaimedRun:
            event = event_from_row(triggers.get(row["event_id"]))
            steps = {s.id: s for s in steps_of.get(row["id"], ())}
            events = self._events_of_run(c, row["id"]) if row["last_seq"] is not None else []
            return ClaimedRun(row["id"], row["function_id"], event, row["created_at"], steps, events)

        def failed(row: Any, error: Exception) -> None:
            nonlocal again
            run = {"run_id": row["id"], "owner": owner, "now": now}
            if not self._failed(c, DeadLetterKind.RUN, row["id"], error, now, run_id=row["id"],
                                event_id=row["event_id"]):  # fmt: skip
                self._left_running(c, self._x(c, "requeue_run", run).fetchall())
                again = True
                return
            message = f"set aside: loading the run failed {MAX_FAILURES} times ({describe(error, 2000)['message']})"
            self._x(c, "finish_run", {**run, "status": RunStatus.FAILED.value, "output": None,
                                      "error": _serde.dumps({"name": DEAD_LETTER, "message": message})})  # fmt: skip
            self._x(c, "delete_timers_of_run", run)
            self._x(c, "delete_waits_of_run", run)
            self._left_running(c, self._x(c, "run_keys", run).fetchall())

        return [run for run in self._each(c, rows, one, failed) if run is not None], again

    def _events_of_run(self, c: Conn, run_id: str) -> list[Event]:
        return [event_from_row(r) for r in self._x(c, "events_of_run", {"run_id": run_id})]

    def _steps(self, c: Conn, run_id: str) -> list[StepRow]:
        return [_step_row(r) for r in self._x(c, "steps_of_run", {"run_id": run_id})]

    async def record_step(self, run_id: str, owner: str, step: StepWrite, timer: TimerWrite | None,
                          events: list[NewEvent], now: int, dedup_since: int,
                          handle: HandleWrite | None = None) -> tuple[str, list[str]]:  # fmt: skip
        return await self._write(self._record_step, run_id, owner, step, timer, events, now, dedup_since, handle)

    def _record_step(self, c: Conn, run_id: str, owner: str, step: StepWrite,
                     timer: TimerWrite | None, events: list[NewEvent], now: int, dedup_since: int,
                     handle: HandleWrite | None) -> tuple[str, list[str]]:  # fmt: skip
        self._lock_dedup(c, events)  # before the run's row, as a send that resumes this run takes them
        if self._join_statements and not events:  # the check and the record in one statement
            params = {"run_id": run_id, "owner": owner, **step.__dict__}
            control = self._x(c, "record_owned_step", params).fetchone()
            if control is None or control["owner"] != owner:
                return Control.LOST, []
            ids: list[str] = []
            if step.error is not None:
                self._insert_step_error(c, run_id, step)
        else:
            control = self._x(c, "run_control", {"run_id": run_id}).fetchone()  # locks the row (PostgreSQL)
            if control is None or control["owner"] != owner:
                return Control.LOST, []
            ids = self._send(c, events, now, True, dedup_since) if events else []
            self._upsert_step(c, run_id, step, _serde.dumps(ids) if events else step.output)
        if timer is not None:
            self._x(c, "insert_timer", {"run_id": run_id, **timer.__dict__})
        elif step.kind != "run" or step.attempts > 1 or step.id.startswith("#"):
            # a retried step that ended: its backoff timer, if any, has no more purpose (a step run once
            # has none: its retry timer is written with a failed attempt, and a step id is its run's own)
            self._x(c, "delete_timer", {"run_id": run_id, "step_id": step.id})
        if handle is not None:
            self._x(c, "insert_handle", {"run_id": run_id, **handle.__dict__})
        return (Control.CANCEL if control["cancel_requested"] else Control.CONTINUE), ids

    def _upsert_step(self, c: Conn, run_id: str, step: StepWrite, output: str | None) -> None:
        """Write a step's record; a failed attempt's error is also kept with the step's others."""
        self._x(c, "upsert_step", {"run_id": run_id, **step.__dict__, "output": output})
        if step.error is not None:
            self._insert_step_error(c, run_id, step)

    def _insert_step_error(self, c: Conn, run_id: str, step: StepWrite) -> None:
        self._x(c, "insert_step_error", {"run_id": run_id, "step_id": step.id, "attempt": step.attempts,
                                         "error": step.error})  # fmt: skip

    async def park(self, run_id: str, owner: str, status: str, steps: list[StepWrite], timers: list[TimerWrite],
                   waits: list[WaitWrite], events: list[NewEvent], now: int) -> tuple[str, dict[str, StepRow]]:  # fmt: skip
        return await self._write(self._park, run_id, owner, status, steps, timers, waits, events, now)

    def _park(self, c: Conn, run_id: str, owner: str, status: str, steps: list[StepWrite],
              timers: list[TimerWrite], waits: list[WaitWrite], events: list[NewEvent],
              now: int) -> tuple[str, dict[str, StepRow]]:  # fmt: skip
        control = self._x(c, "run_control", {"run_id": run_id}).fetchone()  # locks the row (PostgreSQL)
        if control is None or control["owner"] != owner:
            return Park.LOST, {}
        if control["cancel_requested"]:
            return Park.CANCEL, {}
        for step in steps:
            self._upsert_step(c, run_id, step, step.output)
        for timer in timers:
            self._x(c, "insert_timer", {"run_id": run_id, **timer.__dict__})
        self._send(c, events, now, True, None)
        resolved = False
        for group in group_waits(waits):
            resolved = self._register(c, run_id, group, now) or resolved
        if not resolved:
            parked = self._x(c, "park_run", {"run_id": run_id, "owner": owner, "status": status}).fetchall()
            if parked:
                self._left_running(c, parked)
                return Park.PARKED, {}
        self._x(c, "clear_resume", {"run_id": run_id})
        return Park.AGAIN, {s.id: s for s in self._steps(c, run_id)}

    async def finish(self, run_id: str, owner: str | None, status: str, output: str | None,
                     error: dict[str, str] | None, now: int) -> bool:  # fmt: skip
        return await self._write(self._finish, run_id, owner, status, output, error, now)

    async def back_off(self, run_id: str, owner: str, due_at: int) -> None:
        def back_off(c: Conn) -> None:
            left = self._x(c, "backoff_run", {"run_id": run_id, "owner": owner}).fetchall()
            if left:
                self._timer(c, run_id, "#backoff", TimerKind.RETRY, due_at)
                self._left_running(c, left)

        await self._write(back_off)

    async def cancel(self, run_id: str, now: int, why: str | None = None) -> str:
        if unstorable(run_id):
            return Cancelled.ENDED
        return await self._write(self._cancel, run_id, now, why)

    async def rerun(self, run_id: str, from_step: str | None, now: int) -> str:
        return await self._write(self._rerun, run_id, from_step, now)

    async def cancel_runs(self, run_ids: list[str], now: int, why: str) -> list[str]:
        return await self._write(lambda c: [self._cancel(c, run_id, now, why) for run_id in run_ids])

    async def rerun_runs(self, run_ids: list[str], now: int) -> list[str]:
        return await self._write(lambda c: [self._rerun(c, run_id, None, now) for run_id in run_ids])

    # -- timers -----------------------------------------------------------

    def _fire_timers(self, c: Conn, now: int, limit: int) -> int:
        rows = self._x(c, "due_timers", {"now": now, "limit": limit}).fetchall()

        def one(row: Any) -> None:
            key = {"run_id": row["run_id"], "step_id": row["step_id"]}
            if not self._x(c, "delete_timer", key).rowcount:
                return  # another worker fired it
            if row["kind"] == TimerKind.SLEEP:
                self._x(c, "complete_sleep", {**key, "now": row["due_at"]})
            elif self._fire_lifecycle_timer(c, row, now):
                return
            elif row["kind"] != TimerKind.RETRY:
                self._wait_timed_out(c, row["run_id"], row["step_id"], row["kind"], row["due_at"])
                return
            self._x(c, "wake_run", {"run_id": row["run_id"], "now": now})

        def failed(row: Any, error: Exception) -> None:
            ref = f"{row['run_id']}\x1f{row['step_id']}\x1f{row['due_at']}"
            detail = _serde.dumps({"kind": row["kind"], "due_at": row["due_at"]})
            if self._failed(c, DeadLetterKind.TIMER, ref, error, now, run_id=row["run_id"], step_id=row["step_id"],
                            detail=detail):  # fmt: skip
                self._x(c, "delete_timer", {"run_id": row["run_id"], "step_id": row["step_id"]})

        self._each(c, rows, one, failed)
        return len(rows)

    async def resume(self, token_hash: str, data: str | None, now: int) -> bool:
        return await self._write(self._resume, token_hash, data, now)

    async def peek_handle(self, token_hash: str, now: int) -> tuple[bool, str | None]:
        def read(c: Conn) -> tuple[bool, str | None]:
            h = self._x(c, "handle_by_hash", {"token_hash": token_hash}).fetchone()
            usable = (h is not None and h["used_at"] is None and h["expires_at"] > now
                      and not RunStatus(h["status"]).finished)  # fmt: skip
            return usable, (h["redirect_url"] if h is not None else None)

        return await self._read(read)

    async def sync_schedules(self, schedules: list[ScheduleWrite], now: int) -> None:
        await self._write(self._sync_schedules, schedules, now)

    async def save_sdk_app(self, app: SdkAppRow) -> bool:
        def save(c: Conn) -> bool:
            self._lock(c, ["#sdk"])  # two syncs at once: one is the last, whole, and ids are checked against it
            row = self._x(c, "sdk_app_digest", {"app_id": app.app_id}).fetchone()
            if row is not None and row["digest"] == app.digest:
                return False
            ids = {f.get("id") for f in _serde.loads(app.functions)}
            for other in self._x(c, "sdk_apps_all").fetchall():  # a few rows: one per SDK app
                taken = (
                    ids & {f.get("id") for f in _serde.loads(other["functions"])}
                    if other["app_id"] != app.app_id
                    else set()
                )
                if taken:
                    raise ValueError(f"function {sorted(taken)[0]!r}: a function of the SDK app "
                                     f"{other['app_id']!r} has this id already")  # fmt: skip
            self._x(c, "upsert_sdk_app", {"app_id": app.app_id, "url": app.url, "functions": app.functions,
                                          "digest": app.digest, "now": app.synced_at})  # fmt: skip
            return True

        return await self._write(save)

    async def sdk_apps(self) -> list[SdkAppRow]:
        return await self._read(lambda c: [SdkAppRow(r["app_id"], r["url"], r["functions"], r["digest"],
                                                     r["synced_at"]) for r in self._x(c, "sdk_apps_all")])  # fmt: skip

    async def sdk_apps_version(self) -> str:
        return str(await self._read(lambda c: self._x(c, "sdk_apps_version").fetchone()["version"]))

    async def next_due(self) -> int | None:
        return await self._read(lambda c: self._x(c, "next_due").fetchone()["due"])

    async def has_work(self, now: int) -> bool:
        return await self._read(lambda c: bool(self._x(c, "has_work", {"now": now}).fetchone()["busy"]))

    # -- reads ------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run | None:
        if unstorable(run_id):
            return None

        def read(c: Conn) -> Run | None:
            row = self._x(c, "get_run", {"run_id": run_id}).fetchone()
            return None if row is None else self._run(c, row, steps=True)

        return await self._read(read)

    def _run(self, c: Conn, row: Any, steps: bool = False) -> Run:
        """A run as read, with the events of its batch or burst, and with ``steps`` its steps and their errors."""
        events = self._events_of_run(c, row["id"]) if row["last_seq"] is not None else None
        if not steps:
            return run_from_row(row, None, events)
        errors: dict[str, list[str]] = {}
        for r in self._x(c, "step_errors_of_run", {"run_id": row["id"]}):
            errors.setdefault(r["step_id"], []).append(r["error"])
        return run_from_row(row, self._steps(c, row["id"]), events, errors)

    async def query_runs(self, query: RunQuery, limit: int) -> tuple[list[Run], tuple[int, str] | None]:
        """One page of a list of runs: the query run is the one whose index drives it (the event's runs,
        a function's, one status's, or all by creation), in the query's order. One row more than the
        page tells whether another page follows."""
        if unstorable(query.function_id, query.event_id, query.run_id, query.rerun_of):
            return [], None
        order = "oldest" if query.oldest_first else "newest"
        one_status = query.statuses is not None and len(query.statuses) == 1
        if query.run_id is not None:
            name = "query_one_run"
        elif query.rerun_of is not None:
            name = f"query_runs_of_rerun_{order}"
        elif query.event_id is not None:
            name = "query_runs_of_event"
        elif query.function_id is not None:
            name = f"query_runs_of_function_{order}"
        elif one_status:
            name = f"query_runs_by_status_{order}"
        else:
            name = f"query_runs_{order}"
        params = {**query.bounds(), "function_id": query.function_id, "event_id": query.event_id,
                  "run_id": query.run_id, "rerun_of": query.rerun_of,
                  "status": query.statuses[0] if one_status and query.statuses else None,
                  "statuses": None if query.statuses is None else _serde.dumps(list(query.statuses)),
                  "oldest": query.oldest_first, "limit": limit + 1}  # fmt: skip

        def read(c: Conn) -> tuple[list[Run], tuple[int, str] | None]:
            rows = self._x(c, name, params).fetchall()
            page = [self._run(c, r) for r in rows[:limit]]
            more = len(rows) > limit and limit > 0
            return page, ((rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if more else None)

        return await self._read(read)

    async def count_runs(self, query: RunQuery) -> dict[str, int]:
        """Counted on the index that drives the query: the event's runs, a function's, or each status's
        range of the status index (seven counts of an index range, reading no run)."""
        counts = dict.fromkeys((s.value for s in RunStatus), 0)
        if unstorable(query.function_id, query.event_id):
            return counts
        bounds = replace(query, after=None, oldest_first=False).bounds()
        params = {"lo_at": bounds["lo_at"], "hi_at": bounds["hi_at"], "function_id": query.function_id,
                  "event_id": query.event_id}  # fmt: skip

        def read(c: Conn) -> dict[str, int]:
            if query.event_id is not None or query.function_id is not None:
                name = "count_runs_of_event" if query.event_id is not None else "count_runs_of_function"
                counts.update({r["status"]: r["n"] for r in self._x(c, name, params)})
            else:
                for status in counts:
                    counts[status] = self._x(c, "count_runs_in_status", {**params, "status": status}).fetchone()["n"]
            return counts

        return await self._read(read)

    async def runs_by_ids(self, run_ids: list[str]) -> list[Run]:
        ids = [i for i in run_ids if not unstorable(i)]
        if not ids:
            return []
        params = {"ids": _serde.dumps(ids)}
        return await self._read(lambda c: [self._run(c, r) for r in self._x(c, "runs_by_ids", params).fetchall()])

    async def runs_for_event(self, event_id: str) -> list[Run]:
        if unstorable(event_id):
            return []
        return await self._read(
            lambda c: [
                self._run(c, r, steps=True)  # few: a run's steps are what one looks for
                for r in self._x(c, "runs_for_event", {"event_id": event_id}).fetchall()
            ]
        )

    async def list_events(self, name: str | None, limit: int, before: int | None = None) -> list[EventRecord]:
        if unstorable(name):
            return []
        params = {"name": name, "before": before, "limit": limit}
        return await self._read(lambda c: [event_record(r) for r in self._x(c, "list_events", params)])

    async def get_event(self, event_id: str) -> EventRecord | None:
        if unstorable(event_id):
            return None

        def read(c: Conn) -> EventRecord | None:
            row = self._x(c, "get_event", {"event_id": event_id}).fetchone()
            return None if row is None else event_record(row)

        return await self._read(read)

    async def runs_resumed_by_event(self, event_id: str, limit: int | None = None,
                                    before: str | None = None) -> list[Run]:  # fmt: skip
        if unstorable(event_id, before):
            return []
        params = {"event_id": event_id, "before": before, "limit": FAR if limit is None else limit}
        return await self._read(
            lambda c: [self._run(c, r) for r in self._x(c, "runs_resumed_by_event", params).fetchall()]
        )

    async def list_waits(self, run_id: str | None, limit: int, before: int | None = None) -> list[WaitRow]:
        if unstorable(run_id):
            return []
        params = {"run_id": run_id, "before": FAR if before is None else before, "limit": limit}

        def read(c: Conn) -> list[WaitRow]:
            rows = self._x(c, "list_waits" if run_id is None else "list_waits_of_run", params).fetchall()
            return [WaitRow(r["run_id"], r["function_id"], r["step_id"], r["kind"],
                            [n for n in r["names"].split("\x1f") if n], r["shape"], r["match_key"], r["if_exp"],
                            r["created_at"], r["due_at"], r["handle_step"], r["redirect_url"], r["seq"],
                            r["condition"], r["take"])
                    for r in rows]  # fmt: skip

        return await self._read(read)

    async def counts(self) -> Counts:
        def read(c: Conn) -> Counts:
            # kept by triggers (migration 0005) as runs and waits change: a scrape reads a few rows
            # (on PostgreSQL, the deltas since the last scrape, which it folds into one row each)
            self._x(c, "lock_counts")
            runs = {r["status"]: r["n"] for r in self._x(c, "counted_runs")}
            waits = self._x(c, "counted_waits").fetchone()
            dead = self._x(c, "count_dead_letters").fetchone()["n"]
            held = {r["queued_reason"]: r["n"] for r in self._x(c, "count_held")}
            skipped = {(r["function_id"], r["reason"]): r["n"] for r in self._x(c, "skip_counts")}
            return Counts(runs, waits["open"], waits["scanned"], dead_letters=dead, queued=held, skipped=skipped)

        return await self._read(read)

    async def dead_letters(self, limit: int, before: int | None = None) -> list[DeadLetter]:
        params = {"limit": limit, "before": before}
        return await self._read(lambda c: [dead_letter_from_row(r) for r in self._x(c, "list_dead_letters", params)])

    async def list_buffers(self, function_id: str | None, limit: int, before: int | None = None) -> list[Buffer]:
        if unstorable(function_id):
            return []
        params = {"function_id": function_id, "limit": limit, "before": before}
        return await self._read(lambda c: [buffer_from_row(r) for r in self._x(c, "list_buffers", params)])

    # -- workers ----------------------------------------------------------

    async def heartbeat(self, owner: str, wall_now: int) -> None:
        await self._write(lambda c: self._x(c, "upsert_worker", {"id": owner, "now": wall_now}), quiet=True)

    async def recover(self, alive_since: int, now: int) -> int:
        def recover(c: Conn) -> int:
            self._x(c, "delete_dead_workers", {"alive_since": alive_since})
            rows = self._x(c, "recover_runs", {"alive_since": alive_since, "now": now}).fetchall()
            self._left_running(c, rows)
            recovered = len(rows)
            self._ungate(c)
            # fold the counters here too (every heartbeat), so that a store nobody scrapes does not
            # keep a delta row per change on PostgreSQL; on SQLite this reads a few rows
            self._x(c, "lock_counts")
            self._x(c, "counted_runs").fetchall()
            self._x(c, "counted_waits").fetchall()
            return recovered

        return await self._write(recover)

    async def release(self, owner: str, now: int) -> None:
        def release(c: Conn) -> None:
            self._left_running(c, self._x(c, "release_runs", {"owner": owner, "now": now}).fetchall())
            self._x(c, "delete_worker", {"id": owner})

        await self._write(release)


def settle(writes: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]], outcomes: list[tuple[bool, Any]],
           translate: Callable[[BaseException], BaseException | None]) -> None:  # fmt: skip
    """Hand a batch of writes (group commit) their outcomes: on each caller's loop, with one wake-up of each
    loop, not one per write; ``translate`` makes a driver's error the store's (None: keep it)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (loop, future), (ok, value) in zip(writes, outcomes, strict=True):
        if isinstance(value, BaseException):
            error = translate(value)
            if error is not None:
                error.__cause__ = value
                value = error
        by_loop.setdefault(loop, []).append((future, ok, value))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is gone; settle the others
            loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():  # its caller gave up (cancelled); the write itself stands
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


@contextlib.contextmanager
def rows_isolated(isolated: bool = True) -> Iterator[None]:
    """Run a transaction again after it failed: every row of ``_each`` under a savepoint of its own."""
    _rows.isolated = isolated
    try:
        yield
    finally:
        _rows.isolated = False


def _step_row(r: Any) -> StepRow:
    return StepRow(r["id"], r["kind"], r["status"], r["attempts"], r["output"], r["error"], r["started_at"],
                   r["ended_at"], r["wake_at"])  # fmt: skip


def _database_fault(error: BaseException) -> bool:
    """Whether ``error`` is the database's trouble rather than one row's: a deadlock or serialization
    failure, a lost connection, a full disk, a lock. Those end the whole transaction (to be retried)."""
    if isinstance(error, sqlite3.OperationalError):
        return True
    if hasattr(error, "sqlstate"):  # a psycopg error: its SQLSTATE class says whose fault it is
        state = error.sqlstate
        return not isinstance(state, str) or state[:2] in ("08", "40", "53", "57", "58", "XX")
    return False
