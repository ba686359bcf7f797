"""The transactions of a SQL store, shared by SQLite and PostgreSQL.

Each public method is one transaction; its body is a plain function of a
connection, run by the dialect (``_write`` / ``_read``) on a thread of its
own. The dialects differ in their SQL files, in how they open connections and
transactions, and in the locks that order an event against a registration
(``_lock``): SQLite's single writer needs none; PostgreSQL takes advisory locks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tarry import _ids, _serde
from tarry._model import EventRecord, Run
from tarry._store.base import (
    ClaimedRun,
    Control,
    Counts,
    HandleWrite,
    Hooks,
    NewEvent,
    Park,
    Sent,
    StepRow,
    StepWrite,
    TimerWrite,
    WaitRow,
    WaitWrite,
)
from tarry._store.rows import event_from_row, event_json, event_record, run_from_row
from tarry._store.sql_waits import CANCELLED, Conn, WaitsMixin

T = TypeVar("T")


class SQLStore(WaitsMixin):
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
        ids = self._send(c, events, now, deliver, dedup_since, resumed, started)
        if claim is not None and claim[1] > 0 and (resumed or started):
            return Sent(ids, resumed, self._claim(c, *claim))
        return Sent(ids, resumed)

    def _send(self, c: Conn, events: list[NewEvent], now: int, deliver: bool, dedup_since: int,
              resumed: list[str] | None = None, started: list[str] | None = None) -> list[str]:  # fmt: skip
        ids = []
        for event in events:
            if event.dedup_id is not None:
                row = self._x(c, "find_duplicate", {"dedup_id": event.dedup_id, "since": dedup_since}).fetchone()
                if row is not None:
                    ids.append(row["id"])
                    continue
            self._insert_event(c, event, now, deliver, resumed, started)
            ids.append(event.id)
        return ids

    def _insert_event(self, c: Conn, event: NewEvent, now: int, deliver: bool = True,
                      resumed: list[str] | None = None, started: list[str] | None = None) -> int:  # fmt: skip
        due = event.ts <= now and deliver
        seq: int = self._x(c, "insert_event", {**event.__dict__, "delivered": int(due)}).fetchone()["seq"]
        if due:  # delivered in this transaction: the row is inserted as delivered already
            found = self._deliver(c, {**event.__dict__, "seq": seq}, now, started)
            if resumed is not None:
                resumed.extend(found)
        return seq

    def _deliver(self, c: Conn, row: Any, now: int, started: list[str] | None = None) -> list[str]:
        """Start the functions the event (a row of ``events``) triggers and resolve the waits it matches."""
        resumed = self._match_waits(c, row, now)  # first: the runs it starts never match their own trigger
        for function_id in self.hooks.route(row["name"], row["exclude_function"], row["only_function"]):
            run_id = _ids.new_id(now)
            self._x(c, "insert_run", {"id": run_id, "function_id": function_id, "event_id": row["id"], "now": now})
            if started is not None:
                started.append(run_id)
            for wait in self.hooks.cancel_waits(function_id, event_json(row)):
                self._insert_wait(c, run_id, wait, now)
        return resumed

    def _deliver_due(self, c: Conn, now: int, limit: int) -> int:
        rows = self._x(c, "due_events", {"now": now, "limit": limit}).fetchall()
        for row in rows:
            self._x(c, "mark_delivered", {"seq": row["seq"]})
            self._deliver(c, row, now)
        return len(rows)

    # -- runs: claim, steps, park, finish ---------------------------------

    async def tick(self, owner: str, limit: int, now: int) -> tuple[list[ClaimedRun], int | None]:
        return await self._write(self._tick, owner, limit, now, quiet=True)

    def _tick(self, c: Conn, owner: str, limit: int, now: int) -> tuple[list[ClaimedRun], int | None]:
        self._deliver_due(c, now, 1000)
        self._fire_timers(c, now, 1000)
        claimed = self._claim(c, owner, limit) if limit > 0 else []
        return claimed, self._x(c, "next_due").fetchone()["due"]

    def _claim(self, c: Conn, owner: str, limit: int) -> list[ClaimedRun]:
        claimed = []
        for row in self._x(c, "claim_runs", {"owner": owner, "limit": limit}).fetchall():
            event = event_from_row(self._x(c, "event_by_id", {"id": row["event_id"]}).fetchone())
            steps = {s.id: s for s in self._steps(c, row["id"])}
            claimed.append(ClaimedRun(row["id"], row["function_id"], event, row["created_at"], steps))
        return claimed

    def _steps(self, c: Conn, run_id: str) -> list[StepRow]:
        return [StepRow(r["id"], r["kind"], r["status"], r["attempts"], r["output"], r["error"], r["started_at"],
                        r["ended_at"], r["wake_at"]) for r in self._x(c, "steps_of_run", {"run_id": run_id})]  # fmt: skip

    async def record_step(self, run_id: str, owner: str, step: StepWrite, timer: TimerWrite | None,
                          events: list[NewEvent], now: int, dedup_since: int,
                          handle: HandleWrite | None = None) -> tuple[str, list[str]]:  # fmt: skip
        return await self._write(self._record_step, run_id, owner, step, timer, events, now, dedup_since, handle)

    def _record_step(self, c: Conn, run_id: str, owner: str, step: StepWrite,
                     timer: TimerWrite | None, events: list[NewEvent], now: int, dedup_since: int,
                     handle: HandleWrite | None) -> tuple[str, list[str]]:  # fmt: skip
        control = self._x(c, "run_control", {"run_id": run_id}).fetchone()
        if control is None or control["owner"] != owner:
            return Control.LOST, []
        ids = self._send(c, events, now, True, dedup_since) if events else []
        params = {"run_id": run_id, **step.__dict__}
        if events:
            params["output"] = _serde.dumps(ids)
        self._x(c, "upsert_step", params)
        if timer is not None:
            self._x(c, "insert_timer", {"run_id": run_id, **timer.__dict__})
        else:  # a retried step that ended: its backoff timer, if any, has no more purpose
            self._x(c, "delete_timer", {"run_id": run_id, "step_id": step.id})
        if handle is not None:
            self._x(c, "insert_handle", {"run_id": run_id, **handle.__dict__})
        return (Control.CANCEL if control["cancel_requested"] else Control.CONTINUE), ids

    async def park(self, run_id: str, owner: str, status: str, steps: list[StepWrite], timers: list[TimerWrite],
                   waits: list[WaitWrite], events: list[NewEvent], now: int) -> tuple[str, dict[str, StepRow]]:  # fmt: skip
        return await self._write(self._park, run_id, owner, status, steps, timers, waits, events, now)

    def _park(self, c: Conn, run_id: str, owner: str, status: str, steps: list[StepWrite],
              timers: list[TimerWrite], waits: list[WaitWrite], events: list[NewEvent],
              now: int) -> tuple[str, dict[str, StepRow]]:  # fmt: skip
        control = self._x(c, "run_control", {"run_id": run_id}).fetchone()
        if control is None or control["owner"] != owner:
            return Park.LOST, {}
        if control["cancel_requested"]:
            return Park.CANCEL, {}
        for step in steps:
            self._x(c, "upsert_step", {"run_id": run_id, **step.__dict__})
        for timer in timers:
            self._x(c, "insert_timer", {"run_id": run_id, **timer.__dict__})
        for event in events:
            self._insert_event(c, event, now)
        resolved = False
        for wait in waits:
            resolved = self._register_wait(c, run_id, wait, now) or resolved
        if not resolved and self._x(c, "park_run", {"run_id": run_id, "owner": owner, "status": status}).rowcount:
            return Park.PARKED, {}
        self._x(c, "clear_resume", {"run_id": run_id})
        return Park.AGAIN, {s.id: s for s in self._steps(c, run_id)}

    async def finish(self, run_id: str, owner: str | None, status: str, output: str | None,
                     error: dict[str, str] | None, now: int) -> bool:  # fmt: skip
        return await self._write(self._finish, run_id, owner, status, output, error, now)

    def _finish(self, c: Conn, run_id: str, owner: str | None, status: str, output: str | None,
                error: dict[str, str] | None, now: int) -> bool:  # fmt: skip
        row = self._x(c, "get_run", {"run_id": run_id}).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            return False
        if row["cancel_requested"] and status != "cancelled":
            status, output, error = "cancelled", None, CANCELLED
        params = {"run_id": run_id, "status": status, "output": output, "now": now,
                  "error": None if error is None else _serde.dumps(error)}  # fmt: skip
        if self._x(c, "finish_run", params).rowcount != 1:
            return False
        self._x(c, "delete_timers_of_run", {"run_id": run_id})
        self._x(c, "delete_waits_of_run", {"run_id": run_id})
        woke: list[str] = []
        for event in self.hooks.system_events(run_from_row(row), status, error, _serde.loads(output), now):
            self._insert_event(c, event, now, True, woke, woke)
        return bool(woke)

    async def back_off(self, run_id: str, owner: str, due_at: int) -> None:
        def back_off(c: Conn) -> None:
            if self._x(c, "backoff_run", {"run_id": run_id, "owner": owner}).rowcount:
                self._x(c, "insert_timer", {"run_id": run_id, "step_id": "#backoff", "kind": "retry", "due_at": due_at})

        await self._write(back_off)

    async def cancel(self, run_id: str, now: int) -> str:
        return await self._write(self._cancel, run_id, now)

    def _cancel(self, c: Conn, run_id: str, now: int) -> str:
        row = self._x(c, "get_run", {"run_id": run_id}).fetchone()
        if row is None or row["status"] in ("completed", "failed", "cancelled"):
            return "ended"
        if row["status"] == "running":
            self._x(c, "request_cancel", {"run_id": run_id})
            return "requested"
        self._finish(c, run_id, None, "cancelled", None, CANCELLED, now)
        return "cancelled"

    # -- timers -----------------------------------------------------------

    def _fire_timers(self, c: Conn, now: int, limit: int) -> int:
        rows = self._x(c, "due_timers", {"now": now, "limit": limit}).fetchall()
        for row in rows:
            key = {"run_id": row["run_id"], "step_id": row["step_id"]}
            if not self._x(c, "delete_timer", key).rowcount:
                continue  # another worker fired it
            if row["kind"] == "sleep":
                self._x(c, "complete_sleep", {**key, "now": row["due_at"]})
            elif row["kind"] != "retry":
                self._wait_timed_out(c, row["run_id"], row["step_id"], row["kind"], row["due_at"])
                continue
            self._x(c, "wake_run", {"run_id": row["run_id"], "now": now})
        return len(rows)

    async def resume(self, token_hash: str, data: str | None, now: int) -> bool:
        return await self._write(self._resume, token_hash, data, now)

    async def peek_handle(self, token_hash: str, now: int) -> tuple[bool, str | None]:
        def read(c: Conn) -> tuple[bool, str | None]:
            h = self._x(c, "handle_by_hash", {"token_hash": token_hash}).fetchone()
            usable = h is not None and h["used_at"] is None and h["expires_at"] > now and h["status"] not in (
                "completed", "failed", "cancelled")  # fmt: skip
            return usable, (h["redirect_url"] if h is not None else None)

        return await self._read(read)

    async def next_due(self) -> int | None:
        return await self._read(lambda c: self._x(c, "next_due").fetchone()["due"])

    async def has_work(self, now: int) -> bool:
        return await self._read(lambda c: bool(self._x(c, "has_work", {"now": now}).fetchone()["busy"]))

    # -- reads ------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run | None:
        def read(c: Conn) -> Run | None:
            row = self._x(c, "get_run", {"run_id": run_id}).fetchone()
            return None if row is None else run_from_row(row, self._steps(c, run_id))

        return await self._read(read)

    async def list_runs(self, function_id: str | None, status: str | None, limit: int) -> list[Run]:
        params = {"function_id": function_id, "status": status, "limit": limit}
        return await self._read(lambda c: [run_from_row(r) for r in self._x(c, "list_runs", params)])

    async def runs_for_event(self, event_id: str) -> list[Run]:
        return await self._read(
            lambda c: [run_from_row(r) for r in self._x(c, "runs_for_event", {"event_id": event_id})]
        )

    async def list_events(self, name: str | None, limit: int) -> list[EventRecord]:
        params = {"name": name, "before": None, "limit": limit}
        return await self._read(lambda c: [event_record(r) for r in self._x(c, "list_events", params)])

    async def get_event(self, event_id: str) -> EventRecord | None:
        def read(c: Conn) -> EventRecord | None:
            row = self._x(c, "get_event", {"event_id": event_id}).fetchone()
            return None if row is None else event_record(row)

        return await self._read(read)

    async def runs_resumed_by_event(self, event_id: str) -> list[Run]:
        return await self._read(
            lambda c: [run_from_row(r) for r in self._x(c, "runs_resumed_by_event", {"event_id": event_id})]
        )

    async def list_waits(self, run_id: str | None, limit: int) -> list[WaitRow]:
        def read(c: Conn) -> list[WaitRow]:
            rows = self._x(c, "list_waits", {"run_id": run_id, "limit": limit}).fetchall()
            return [WaitRow(r["run_id"], r["function_id"], r["step_id"], r["kind"],
                            [n for n in r["names"].split("\x1f") if n], r["shape"], r["match_key"], r["if_exp"],
                            r["created_at"], r["due_at"], r["handle_step"], r["redirect_url"]) for r in rows]  # fmt: skip

        return await self._read(read)

    async def counts(self) -> Counts:
        def read(c: Conn) -> Counts:
            # kept by triggers (migration 0005) as runs and waits change: a scrape reads a few rows
            # (on PostgreSQL, the deltas since the last scrape, which it folds into one row each)
            self._x(c, "lock_counts")
            runs = {r["status"]: r["n"] for r in self._x(c, "counted_runs")}
            waits = self._x(c, "counted_waits").fetchone()
            return Counts(runs, waits["open"], waits["scanned"])

        return await self._read(read)

    # -- workers ----------------------------------------------------------

    async def heartbeat(self, owner: str, wall_now: int) -> None:
        await self._write(lambda c: self._x(c, "upsert_worker", {"id": owner, "now": wall_now}), quiet=True)

    async def recover(self, alive_since: int, now: int) -> int:
        def recover(c: Conn) -> int:
            self._x(c, "delete_dead_workers", {"alive_since": alive_since})
            recovered: int = self._x(c, "recover_runs", {"alive_since": alive_since, "now": now}).rowcount
            return recovered

        return await self._write(recover)

    async def release(self, owner: str, now: int) -> None:
        def release(c: Conn) -> None:
            self._x(c, "release_runs", {"owner": owner, "now": now})
            self._x(c, "delete_worker", {"id": owner})

        await self._write(release)
