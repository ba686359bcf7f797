"""The run lifecycle, shared by every SQL dialect: admission, claiming, and each change of a run's status.

*Admission* decides, as an event is delivered, whether it starts a run of a function (its trigger
filter, idempotency, rate limit, singleton, then debounce or batch). *Claiming* decides which queued
run starts next (concurrency, throttle, priority, the worker's free slots). Every other transition —
park, requeue, back-off, finish, cancel — is one function here, and each hands what the run leaves (a
slot, a window) to the run held next behind it. The rules are data (``Flow`` and trigger filters,
compiled at decoration); the counts, windows and buffers they read live in the store and change in the
transaction that admits or claims. See docs/design/runs.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tarry import _ids, _serde
from tarry._cron import TICK_EVENT, latest_tick, next_tick, parsed, tick_data
from tarry._expressions import Budget
from tarry._flow import IDEMPOTENCY_MS, MAX_BATCH_BYTES, MAX_BURST, Flow, RunKeys
from tarry._model import QueuedReason, RunStatus, SkipReason, StepStatus
from tarry._store.base import Cancelled, NewEvent, ScheduleWrite, StepRow, TimerKind
from tarry._store.rows import event_json, run_from_row
from tarry._store.sql_waits import Conn, Row, WaitsMixin, name_lock

BUFFER_TIMER = "#buffer"  # the run_id of a burst's or batch's timer (its step_id is the buffer's id)
SCHEDULE_TIMER = "#schedule"  # the run_id of a schedule's timer (its step_id is the schedule's id)
START_STEP = "#start"  # the step ids of a run's own timers
FINISH_STEP = "#finish"
THROTTLE_STEP = "#throttle"
#: ready runs a claim looks at in one transaction before it leaves the rest to the next turn
MAX_LOOKS = 1000
#: gated runs each heartbeat looks at for limits dropped from the code (``_ungate``)
UNGATE_SAMPLE = 100
#: what the trigger filters of one event may cost: evaluations, and bytes of the event handed to CEL
FILTER_BUDGET = 1000
FILTER_BUDGET_BYTES = 8 * 1024 * 1024
UNFINISHED = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SLEEPING, RunStatus.WAITING)
#: the steps a rerun from a later step keeps: those that ended (an unfinished one has no result to give)
KEPT_STEPS = (StepStatus.COMPLETED, StepStatus.FAILED)
_NO_KEYS = RunKeys()
log = logging.getLogger("tarry.store")


def unstorable(*texts: str | None) -> bool:
    """Whether a text looked up can name nothing stored: a NUL character, which PostgreSQL cannot hold
    in text (and no id, name or function id Tarry stores has), so both stores answer "none"."""
    return any(t is not None and "\x00" in t for t in texts)


def cancelled(why: str | None) -> dict[str, str]:
    """A cancelled run's error, naming what cancelled it."""
    return {"name": "Cancelled", "message": why or "the run was cancelled"}


@dataclass(frozen=True)
class _Hold:
    """A claim's verdict on a gated run: held queued behind ``partition`` (until ``due``, for a throttle)."""

    partition: str
    reason: QueuedReason
    due: int | None = None
    running: int = 0  # how many of the partition run now (for a concurrency limit)


_BUSY = "busy"  # another transaction is deciding about this partition now: leave the run for the next turn


class LifecycleMixin(WaitsMixin):
    """Admission, claiming and the status transitions; every method runs inside a store transaction."""

    def _try_lock(self, c: Conn, key: str) -> bool:
        """Take ``key``'s lock if nobody holds it (always, with one writer)."""
        return True

    def _cancel(self, c: Conn, run_id: str, now: int, why: str | None = None) -> str:
        """Cancel a run: at once unless it is running (``requested``: at its next step boundary)."""
        row = self._x(c, "get_run_for_update", {"run_id": run_id}).fetchone()
        if row is None or RunStatus(row["status"]).finished:
            return Cancelled.ENDED
        if row["status"] == RunStatus.RUNNING:
            self._x(c, "request_cancel", {"run_id": run_id, "why": why})
            return Cancelled.REQUESTED
        self._finish(c, run_id, None, RunStatus.CANCELLED, None, cancelled(why), now)
        return Cancelled.CANCELLED

    # -- admission ------------------------------------------------------------

    def _start_functions(self, c: Conn, row: Row, now: int, started: list[str] | None) -> None:
        """Admit a delivered event (a row of ``events``) to each function it triggers: first its trigger
        filters (an event none holds for is *filtered*: no run, no skip record), then ``_admit``."""
        # step.invoke: a run of its own, whatever admission says; a schedule's tick is admitted as any event
        invoked = row["only_function"] is not None and row["name"] != TICK_EVENT
        event: dict[str, Any] | None = None  # the event as JSON: parsed once, for every function it starts
        budget: Budget | None = None  # what the trigger filters may cost for this event, made at the first
        for function_id, filters in self.hooks.route(row["name"], row["exclude_function"], row["only_function"]):
            event = event or event_json(row)
            if filters:  # filtered, not skipped: no record, nothing counted
                budget = budget or Budget(FILTER_BUDGET, FILTER_BUDGET_BYTES)
                if not any(f.holds(event, budget) for f in filters):
                    continue
            flow = self.hooks.flow(function_id)
            if flow.admits and not invoked:
                run_id = self._admit(c, row, event, function_id, flow, now)
            else:
                run_id = self._create_run(c, function_id, row, event, flow, now)
            if run_id is not None and started is not None:
                started.append(run_id)
        if budget is not None and budget.skipped:
            log.warning("event %s: %d trigger filters of %r were past the budget of %d evaluations and %d MiB "
                        "and started no run (filters that read less of the event cost less)", row["id"],
                        budget.skipped, row["name"], FILTER_BUDGET, FILTER_BUDGET_BYTES >> 20)  # fmt: skip

    def _admit(self, c: Conn, row: Row, event: dict[str, Any], function_id: str, flow: Flow,
               now: int) -> str | None:  # fmt: skip
        """Idempotency, rate limit, singleton, then debounce or batch, in that order; an event turned away by
        one is not counted by the later ones. The run created, if one was."""
        idempotency = flow.idempotency_key(event)
        if idempotency is not None:
            self._lock(c, [f"i\x1f{function_id}\x1f{idempotency}"])
            taken = {"function_id": function_id, "key": idempotency, "since": now - IDEMPOTENCY_MS}
            if self._x(c, "idempotency_taken", taken).fetchone() is not None:
                self._skip(c, row, function_id, SkipReason.IDEMPOTENCY, now)
                return None
        rate = flow.rate_limit.partition(event) if flow.rate_limit else None
        if rate is not None and flow.rate_limit:
            self._lock(c, [rate])
            window = {"partition": rate, "since": now - flow.rate_limit.period_ms}
            if self._x(c, "rate_count", window).fetchone()["n"] >= flow.rate_limit.limit:
                self._skip(c, row, function_id, SkipReason.RATE_LIMIT, now)
                return None
        if flow.singleton:
            partition = flow.singleton.partition(event)
            self._lock(c, [partition])
            unfinished = [r["id"] for r in self._x(c, "unfinished_in", {"key": partition})]
            if unfinished and flow.singleton.mode == "skip":
                self._skip(c, row, function_id, SkipReason.SINGLETON, now)
                return None
            for old in unfinished:  # mode "cancel": the new run starts once these have ended (claim holds it)
                self._cancel(c, old, now, f"singleton: a newer event ({row['id']}) replaced the run")
        if idempotency is not None:
            self._x(c, "idempotency_put", {"function_id": function_id, "key": idempotency, "now": now})
        if rate is not None:
            self._x(c, "rate_prune", window)
            self._x(c, "rate_insert", {"partition": rate, "now": now})
        if flow.debounce or flow.batch:
            return self._gather(c, row, event, function_id, flow, now)
        return self._create_run(c, function_id, row, event, flow, now)

    def _skip(self, c: Conn, row: Row, function_id: str, reason: SkipReason, now: int) -> None:
        skip = {"event_id": row["id"], "function_id": function_id, "reason": reason.value, "now": now}
        if self._x(c, "insert_skip", skip).rowcount:
            self._x(c, "count_skip", skip)

    def _create_run(self, c: Conn, function_id: str, row: Row, trigger: dict[str, Any], flow: Flow, now: int,
                    events: list[str] | None = None, last_seq: int | None = None,
                    rerun_of: str | None = None) -> str:  # fmt: skip
        """A new queued run of ``row``'s event, ``trigger`` being it as JSON (and, for a batch or burst, of
        ``events``, in order); ``rerun_of``: the finished run it reruns."""
        run_id = _ids.new_id(now)
        keys = flow.run_keys(trigger) if flow.keyed else _NO_KEYS
        slots = (*keys.concurrency, None, None)
        self._x(c, "insert_run", {"id": run_id, "function_id": function_id, "event_id": row["id"], "now": now,
                                  "place": now - keys.priority_ms, "gated": int(flow.gated), "ckey1": slots[0],
                                  "ckey2": slots[1], "tkey": keys.throttle, "skey": keys.singleton,
                                  "last_seq": last_seq, "rerun_of": rerun_of})  # fmt: skip
        for pos, event_id in enumerate(events or ()):
            self._x(c, "insert_run_event", {"run_id": run_id, "pos": pos, "event_id": event_id})
        if flow.start_ms:
            self._timer(c, run_id, START_STEP, TimerKind.START_TIMEOUT, now + flow.start_ms)
        for wait in self.hooks.cancel_waits(function_id, trigger):
            self._insert_wait(c, run_id, wait, now)
        return run_id

    def _timer(self, c: Conn, run_id: str, step_id: str, kind: TimerKind, due_at: int) -> None:
        self._x(c, "insert_timer", {"run_id": run_id, "step_id": step_id, "kind": kind.value, "due_at": due_at})

    # -- reruns ----------------------------------------------------------------

    def _rerun(self, c: Conn, run_id: str, from_step: str | None, now: int) -> str:
        """A new run of a finished run's function, trigger and events, created as ``step.invoke``'s runs are
        (admission skipped; its limits, priority, timeouts and cancel_on as any new run's). With
        ``from_step``, the finished steps recorded before it are kept, and what they consumed stays
        consumed; a ``resume_url`` runs anew (its token is its run's own). ``ValueError`` naming what is
        wrong, and nothing written, for an unknown or unfinished run, an unregistered function, an
        unknown step."""
        row = None if unstorable(run_id) else self._x(c, "get_run", {"run_id": run_id}).fetchone()
        if row is None:
            raise ValueError(f"invalid run_id {run_id!r}: no such run")
        if not RunStatus(row["status"]).finished:
            raise ValueError(f"run {run_id} is {row['status']}: only a finished run (completed, failed or "
                             "cancelled) can be rerun; cancel it first, or wait for it to end")  # fmt: skip
        function_id = row["function_id"]
        if not self.hooks.knows(function_id):
            raise ValueError(f"run {run_id} is a run of {function_id!r}, which is not a function of this app "
                             "(a rerun runs the function's code as registered now)")  # fmt: skip
        kept: list[StepRow] = []
        if from_step is not None:
            steps = self._steps(c, run_id)
            ids = [s.id for s in steps]
            if from_step not in ids:
                listed = ", ".join(repr(i) for i in ids[:20]) + (", ..." if len(ids) > 20 else "")
                raise ValueError(f"invalid from_step {from_step!r}: run {run_id} has no such step "
                                 f"(its steps: {listed or 'none'})")  # fmt: skip
            kept = [s for s in steps[: ids.index(from_step)] if s.status in KEPT_STEPS and s.kind != "resume_url"]
        trigger = self._x(c, "event_row_by_id", {"id": row["e_id"]}).fetchone()
        events = None
        if row["last_seq"] is not None:  # a batch's or burst's run: the same events, the same look-back
            events = [e["id"] for e in self._x(c, "events_of_run", {"run_id": run_id})]
        flow = self.hooks.flow(function_id)
        new_id = self._create_run(c, function_id, trigger, event_json(trigger), flow, now, events, row["last_seq"],
                                  rerun_of=run_id)  # fmt: skip
        for step in kept:
            self._x(c, "upsert_step", {**vars(step), "run_id": new_id})
            copied = {"run_id": new_id, "from_run": run_id, "step_id": step.id}
            self._x(c, "copy_step_errors", copied)
            self._x(c, "copy_consumed", copied)
        return new_id

    # -- debounce and batch ---------------------------------------------------

    def _gather(self, c: Conn, row: Row, event: dict[str, Any], function_id: str, flow: Flow,
                now: int) -> str | None:  # fmt: skip
        """Add the event to its partition's burst or batch; the run made if that closed the batch."""
        rule = flow.batch or flow.debounce
        assert rule is not None
        partition = rule.partition(event)
        self._lock(c, [partition])
        size = len(row["data"]) + len(row["name"]) + 64  # the event's JSON, near enough
        where = {"function_id": function_id, "partition": partition}
        buffer = self._x(c, "buffer_for", where).fetchone()
        made = None
        if buffer is not None and flow.batch and buffer["bytes"] + size > MAX_BATCH_BYTES:
            made = self._flush(c, buffer["id"], now)  # this event would take the batch past its size: the next
            buffer = None
        if buffer is None:
            due = now + (rule.timeout_ms or 0 if flow.batch else min(rule.period_ms, rule.timeout_ms or rule.period_ms))
            kind = "batch" if flow.batch else "debounce"
            buffer_id = self._x(c, "insert_buffer", {**where, "kind": kind, "now": now, "due_at": due,
                                                     "bytes": size}).fetchone()["id"]  # fmt: skip
            pos, count = 0, 1
        else:
            buffer_id, pos, count = buffer["id"], buffer["next_pos"], buffer["size"] + 1
            due = buffer["due_at"]
            if flow.debounce:  # each event restarts the period, up to the timeout after the burst's first
                due = now + rule.period_ms
                if rule.timeout_ms is not None:
                    due = min(due, buffer["first_at"] + rule.timeout_ms)
            if flow.debounce and count > MAX_BURST:  # the newest are kept
                self._x(c, "drop_buffer_event", {"buffer_id": buffer_id, "pos": pos - MAX_BURST})
                count = MAX_BURST
            self._x(c, "grow_buffer", {"id": buffer_id, "now": now, "due_at": due, "size": count, "bytes": size})
        self._x(c, "insert_buffer_event", {"buffer_id": buffer_id, "pos": pos, "event_id": row["id"]})
        if flow.batch and count >= rule.limit:
            return self._flush(c, buffer_id, now)
        self._timer(c, BUFFER_TIMER, str(buffer_id), TimerKind.FLUSH, due)
        return made

    def _flush(self, c: Conn, buffer_id: int, now: int) -> str | None:
        """Create the run of a burst or batch and forget the buffer."""
        buffer = self._x(c, "buffer_by_id", {"id": buffer_id}).fetchone()
        if buffer is None:
            return None
        ids = [r["event_id"] for r in self._x(c, "buffer_event_ids", {"buffer_id": buffer_id})]
        self._x(c, "delete_buffer_events", {"buffer_id": buffer_id})
        self._x(c, "delete_buffer", {"id": buffer_id})
        self._x(c, "delete_timer", {"run_id": BUFFER_TIMER, "step_id": str(buffer_id)})
        if not ids:
            return None
        first = self._x(c, "event_row_by_id", {"id": ids[0]}).fetchone()
        last = self._x(c, "event_row_by_id", {"id": ids[-1]}).fetchone()
        trigger = first if buffer["kind"] == "batch" else last  # ctx.event: a batch's first, a burst's last
        flow = self.hooks.flow(buffer["function_id"])
        return self._create_run(c, buffer["function_id"], trigger, event_json(trigger), flow, now, ids, last["seq"])

    # -- claiming -------------------------------------------------------------

    def _pick(self, c: Conn, owner: str, limit: int, now: int) -> tuple[list[Row], bool]:
        """Start up to ``limit`` queued runs for ``owner``: first the gated ones their limits let start, then
        the others, each in its place's order. Also whether runs were left that a next turn should look at."""
        picked: list[Row] = []
        again = False
        if self.hooks.gated:
            picked, again = self._start_gated(c, owner, limit, now)
        if len(picked) < limit:
            picked.extend(self._x(c, "claim_runs", {"owner": owner, "limit": limit - len(picked), "now": now}))
        return picked, again

    def _start_gated(self, c: Conn, owner: str, limit: int, now: int) -> tuple[list[Row], bool]:
        picked: list[Row] = []
        looked = 0
        while len(picked) < limit and looked < MAX_LOOKS:
            rows = self._x(c, "gated_candidates", {"limit": min(limit - len(picked), MAX_LOOKS - looked)}).fetchall()
            if not rows:
                return picked, False
            busy = False
            for row in rows:
                looked += 1
                if row["cancel_requested"]:  # cancelled while it ran, then handed back: it ends now
                    self._finish(c, row["id"], None, RunStatus.CANCELLED, None, None, now)
                    continue
                flow = self.hooks.flow(row["function_id"])
                verdict = self._gate(c, row, flow, now)
                if verdict is None:
                    picked.append(self._start(c, row, flow, owner, now))
                elif verdict == _BUSY:
                    busy = True  # still ready: our own select would return it again, so stop here
                else:
                    assert isinstance(verdict, _Hold)
                    self._hold(c, row, verdict)
            if busy:
                return picked, True
        return picked, looked >= MAX_LOOKS

    def _gate(self, c: Conn, row: Row, flow: Flow, now: int) -> _Hold | str | None:
        """Whether a gated run may start now: None, a ``_Hold``, or ``_BUSY``."""
        for i, partition in enumerate((row["ckey1"], row["ckey2"])):
            if partition is None or i >= len(flow.concurrency):
                continue
            if not self._try_lock(c, partition):
                return _BUSY
            running = self._x(c, "running_in", {"key": partition}).fetchone()["n"]
            if running >= flow.concurrency[i].limit:
                return _Hold(partition, QueuedReason.CONCURRENCY, running=running)
        if row["skey"] is not None and flow.singleton is not None and flow.singleton.mode == "cancel":
            if not self._try_lock(c, row["skey"]):
                return _BUSY
            if self._x(c, "unfinished_others", {"key": row["skey"], "id": row["id"]}).fetchone()["n"]:
                return _Hold(row["skey"], QueuedReason.CONCURRENCY)  # the run it replaces has not ended yet
        throttle = flow.throttle
        if row["started_at"] is None and row["tkey"] is not None and throttle is not None:
            if not self._try_lock(c, row["tkey"]):
                return _BUSY
            window = {"key": row["tkey"], "since": now - throttle.period_ms, "skip": throttle.limit - 1}
            full = self._x(c, "throttle_window", window).fetchone()
            if full is not None:
                return _Hold(row["tkey"], QueuedReason.THROTTLE, full["started_at"] + throttle.period_ms)
        return None

    def _hold(self, c: Conn, row: Row, hold: _Hold) -> None:
        """Hold a run queued behind a partition; what it might have taken of its other partitions goes on."""
        self._x(c, "hold_run", {"id": row["id"], "held": hold.partition, "reason": hold.reason.value})
        if hold.due is not None:  # the head of a throttled partition: its window opens then
            self._timer(c, row["id"], THROTTLE_STEP, TimerKind.THROTTLE, hold.due)
        self._pass_on(
            c, [k for k in (row["ckey1"], row["ckey2"], row["skey"]) if k is not None and k != hold.partition]
        )
        if hold.reason == QueuedReason.CONCURRENCY and hold.running < self.hooks.widest(hold.partition):
            # shared by functions with other limits (scope="app"): a run held behind this one may fit
            self._x(c, "release_next_after", {"held": hold.partition, "id": row["id"]})

    def _start(self, c: Conn, row: Row, flow: Flow, owner: str, now: int) -> Row:
        started: Row = self._x(c, "start_run", {"id": row["id"], "owner": owner, "now": now}).fetchone()
        if row["started_at"] is None:  # its first start
            if flow.start_ms:
                self._x(c, "delete_timer", {"run_id": row["id"], "step_id": START_STEP})
            if flow.finish_ms:
                self._timer(c, row["id"], FINISH_STEP, TimerKind.FINISH_TIMEOUT, now + flow.finish_ms)
            if row["tkey"] is not None:  # the next held behind the window is looked at again (it may fit)
                self._x(c, "release_next", {"held": row["tkey"]})
        return started

    def _pass_on(self, c: Conn, partitions: Iterable[str | None]) -> None:
        """A slot or a window of each partition may be free: the run held longest behind it is ready again.
        (Readying one too many costs a look; one too few would leave a free slot unused.)"""
        keys = sorted({p for p in partitions if p is not None})
        if keys:
            self._lock(c, keys)  # after any claim deciding about them: it sees our change, or we see its hold
            for key in keys:
                self._x(c, "release_next", {"held": key})

    def _left_running(self, c: Conn, rows: Iterable[Row]) -> None:
        """Runs stopped executing (parked, requeued, backed off, ended): their slots go to the next held."""
        self._pass_on(c, [k for r in rows for k in (r["ckey1"], r["ckey2"], r["skey"])])

    def _ungate(self, c: Conn) -> None:
        """Runs made under limits this code has dropped (their function is registered here, with none) start
        as the others do; runs of functions this process does not know are left to the processes that do."""
        for row in self._x(c, "gated_sample", {"limit": UNGATE_SAMPLE}).fetchall():
            fid = row["function_id"]
            if self.hooks.knows(fid) and not self.hooks.flow(fid).gated:
                self._x(c, "ungate_run", {"run_id": row["id"]})

    # -- timers of the lifecycle ----------------------------------------------

    def _fire_lifecycle_timer(self, c: Conn, row: Row, now: int) -> bool:
        """Fire a timer of admission or claiming (its row already deleted); False for any other kind."""
        kind = row["kind"]
        if kind == TimerKind.FLUSH:
            self._flush(c, int(row["step_id"]), now)
        elif kind == TimerKind.SCHEDULE:
            self._fire_schedule(c, int(row["step_id"]), row["due_at"], now)
        elif kind == TimerKind.THROTTLE:
            self._x(c, "unhold_run", {"run_id": row["run_id"]})
        elif kind == TimerKind.START_TIMEOUT:
            run = self._x(c, "get_run_for_update", {"run_id": row["run_id"]}).fetchone()
            if run is not None and run["status"] == RunStatus.QUEUED:
                limit = self.hooks.flow(run["function_id"]).start_ms
                self._cancel(c, row["run_id"], now, f"timeouts.start: not started within {_span(limit)}")
        elif kind == TimerKind.FINISH_TIMEOUT:
            run = self._x(c, "get_run", {"run_id": row["run_id"]}).fetchone()
            limit = self.hooks.flow(run["function_id"]).finish_ms if run is not None else None
            self._cancel(c, row["run_id"], now, f"timeouts.finish: not finished within {_span(limit)}")
        else:
            return False
        return True

    # -- schedules --------------------------------------------------------------

    def _sync_schedules(self, c: Conn, schedules: list[ScheduleWrite], now: int) -> None:
        """The stored schedules become ``schedules``: one row each, with a timer at its next tick."""
        self._lock(c, ["#schedules"])  # two workers starting together store one schedule, not two
        wanted = {(s.function_id, s.cron, s.timezone) for s in schedules}
        for row in self._x(c, "schedules_all").fetchall():
            key = (row["function_id"], row["cron"], row["timezone"])
            if key in wanted:  # kept with its timer: a tick missed meanwhile fires when it is due
                wanted.discard(key)
                self._schedule_timer(c, row["id"], key, now, "insert_timer_if_absent")
            else:  # a changed expression or zone, a function gone: the old schedule stops
                self._x(c, "delete_schedule", {"id": row["id"]})
                self._x(c, "delete_timer", {"run_id": SCHEDULE_TIMER, "step_id": str(row["id"])})
        for function_id, cron, timezone in sorted(wanted):
            params = {"function_id": function_id, "cron": cron, "timezone": timezone, "now": now}
            schedule_id = self._x(c, "insert_schedule", params).fetchone()["id"]
            self._schedule_timer(c, schedule_id, (function_id, cron, timezone), now, "insert_timer")

    def _schedule_timer(self, c: Conn, schedule_id: int, key: tuple[str, str, str], after: int, query: str) -> None:
        due = next_tick(parsed(key[1], key[2]), after)
        if due is not None:
            self._x(c, query, {"run_id": SCHEDULE_TIMER, "step_id": str(schedule_id),
                               "kind": TimerKind.SCHEDULE.value, "due_at": due})  # fmt: skip

    def _fire_schedule(self, c: Conn, schedule_id: int, due: int, now: int) -> None:
        """A tick (its timer's row already deleted): its event, routed to the function alone, and the timer
        moved to the next tick, in this transaction. Of ticks missed meanwhile only the latest fires."""
        row = self._x(c, "schedule_by_id", {"id": schedule_id}).fetchone()
        if row is None:
            return
        cron = parsed(row["cron"], row["timezone"])
        tick = latest_tick(cron, due, now)
        event = NewEvent(_ids.new_id(now), TICK_EVENT, _serde.dumps(tick_data(cron, tick)), None, None, None, tick,
                         now, only_function=row["function_id"])  # fmt: skip
        self._send(c, [event], now, True, None)
        self._schedule_timer(c, schedule_id, (row["function_id"], row["cron"], row["timezone"]), tick, "insert_timer")

    # -- transitions ------------------------------------------------------------

    def _finish(self, c: Conn, run_id: str, owner: str | None, status: str, output: str | None,
                error: dict[str, str] | None, now: int) -> bool:  # fmt: skip
        """End the run; what it held goes to the next runs held; its system events are sent. True if they
        started or resumed runs."""
        row = self._x(c, "get_run_for_update", {"run_id": run_id}).fetchone()  # as run_control: fencing
        if row is None or (owner is not None and row["owner"] != owner):
            return False
        if row["cancel_requested"]:
            status, output, error = RunStatus.CANCELLED, None, cancelled(row["cancel_reason"])
        params: dict[str, Any] = {"run_id": run_id, "status": str(status), "output": output, "now": now,
                                  "error": None if error is None else _serde.dumps(error)}  # fmt: skip
        events = self.hooks.system_events(run_from_row(row), str(status), error, _serde.loads(output), now)
        names = sorted({e.name for e in events} | {""})  # the send of its events needs their locks first
        if self._join_statements:
            params["locks"] = _serde.dumps([name_lock(n) for n in names])
            if not self._x(c, "finish_and_clear_run", params).fetchone()["ended"]:
                return False
        else:
            if self._x(c, "finish_run", params).rowcount != 1:
                return False
            self._x(c, "delete_timers_of_run", {"run_id": run_id})
            self._x(c, "delete_waits_of_run", {"run_id": run_id})
        if row["held"] is not None:  # it was held behind a partition: the next held there goes ahead
            self._pass_on(c, [row["held"]])
        elif row["ckey1"] is not None or row["skey"] is not None:
            self._left_running(c, [row])
        woke: list[str] = []
        self._send(c, events, now, True, None, woke, woke, locked=names if self._join_statements else ())
        return bool(woke)

    _send: Callable[..., list[str]]  # the store's: insert and deliver events in this transaction
    _steps: Callable[..., list[StepRow]]  # the store's: a run's step records, in the order first recorded


def _span(ms: int | None) -> str:
    if ms is None:
        return "its limit"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
