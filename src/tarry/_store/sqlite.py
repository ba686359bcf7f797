"""The SQLite store: one connection, one thread, one transaction per call.

Every method runs as a whole transaction on a dedicated thread, so the event
loop never blocks on the disk and a transaction costs one thread hop. Writes
take ``BEGIN IMMEDIATE``: SQLite's single writer is what orders an event
against a concurrent wait or claim. This module knows SQL, not workflows.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from tarry import _ids, _serde
from tarry._errors import StoreError
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
from tarry._store.sqlite_waits import CANCELLED, Q, WaitsMixin, load_migrations

T = TypeVar("T")
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "off": "OFF", "extra": "EXTRA"}


def sqlite_path(url: str) -> tuple[str, dict[str, str]]:
    """The file path (or ``:memory:``) and options of a ``sqlite://`` URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"invalid database URL {url!r}: use sqlite:///relative.db or sqlite:////absolute.db")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ValueError(f"invalid database URL {url!r}: no file path after sqlite:///")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    sync = options.get("synchronous", "full").lower()
    if sync not in _SYNCHRONOUS:
        raise ValueError(f"invalid database URL {url!r}: synchronous must be one of {', '.join(_SYNCHRONOUS)}")
    return path, options


class SQLiteStore(WaitsMixin):
    dialect = "sqlite"
    hooks: Hooks

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, self.options = sqlite_path(url)
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tarry-sqlite")

    # -- plumbing ---------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(self._guarded, fn, *args))

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error on {self.path}: {exc}") from exc

    def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # never leave the write lock held
                conn.execute("ROLLBACK")
            raise
        return result

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(self._tx, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(lambda: fn(self._connection(), *args))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed; start the app first (async with app / await app.start())")
        return self._conn

    # -- lifecycle --------------------------------------------------------

    async def open(self, hooks: Hooks) -> None:
        self.hooks = hooks
        try:
            await self._call(self._open)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise

    def _open(self) -> None:
        if self.path != ":memory:":
            folder = Path(self.path).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder {str(folder)!r} for the SQLite database: {exc}") from exc
            if not os.access(folder, os.W_OK) or (Path(self.path).exists() and not os.access(self.path, os.W_OK)):
                raise StoreError(f"cannot write the SQLite database {self.path!r}: permission denied")
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite database {self.path!r}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            if self.path != ":memory:":
                _set_wal(conn)
            conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[self.options.get('synchronous', 'full').lower()]}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tarry_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        for version, name, sql in load_migrations("sqlite"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM tarry_migrations WHERE version = ?", (version,)).fetchone():
                    conn.execute("ROLLBACK")
                    continue
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO tarry_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time_ns() // 1_000_000),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    async def applied_migrations(self) -> list[int]:
        return await self._read(
            lambda c: [r[0] for r in c.execute("SELECT version FROM tarry_migrations ORDER BY version")]
        )

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(self._close)
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        assert self._conn is not None
        self._conn.close()
        self._conn = None

    # -- events -----------------------------------------------------------

    async def send(self, events: list[NewEvent], now: int, deliver: bool, dedup_since: int) -> Sent:
        return await self._write(self._send_tx, events, now, deliver, dedup_since)

    def _send_tx(self, c: sqlite3.Connection, events: list[NewEvent], now: int, deliver: bool,
                 dedup_since: int) -> Sent:  # fmt: skip
        resumed: list[str] = []
        ids = self._send(c, events, now, deliver, dedup_since, resumed)
        return Sent(ids, resumed)

    def _send(self, c: sqlite3.Connection, events: list[NewEvent], now: int, deliver: bool, dedup_since: int,
              resumed: list[str] | None = None) -> list[str]:  # fmt: skip
        ids = []
        for event in events:
            if event.dedup_id is not None:
                row = c.execute(Q["find_duplicate"], {"dedup_id": event.dedup_id, "since": dedup_since}).fetchone()
                if row is not None:
                    ids.append(row["id"])
                    continue
            self._insert_event(c, event, now, deliver, resumed)
            ids.append(event.id)
        return ids

    def _insert_event(self, c: sqlite3.Connection, event: NewEvent, now: int, deliver: bool = True,
                      resumed: list[str] | None = None) -> int:  # fmt: skip
        seq: int = c.execute(Q["insert_event"], event.__dict__).fetchone()[0]
        if event.ts <= now and deliver:
            found = self._deliver(c, seq, now)
            if resumed is not None:
                resumed.extend(found)
        return seq

    def _deliver(self, c: sqlite3.Connection, seq: int, now: int) -> list[str]:
        """Start the functions the event triggers and resolve the waits it matches."""
        row = c.execute(Q["event_for_delivery"], {"seq": seq}).fetchone()
        resumed = self._match_waits(c, row, now)  # first: the runs it starts never match their own trigger
        for function_id in self.hooks.route(row["name"], row["exclude_function"], row["only_function"]):
            run_id = _ids.new_id(now)
            c.execute(Q["insert_run"], {"id": run_id, "function_id": function_id, "event_id": row["id"], "now": now})
            for wait in self.hooks.cancel_waits(function_id, event_json(row)):
                self._insert_wait(c, run_id, wait, now)
        c.execute(Q["mark_delivered"], {"seq": seq})
        return resumed

    def _deliver_due(self, c: sqlite3.Connection, now: int, limit: int) -> int:
        rows = c.execute(Q["due_events"], {"now": now, "limit": limit}).fetchall()
        for row in rows:
            self._deliver(c, row["seq"], now)
        return len(rows)

    # -- runs: claim, steps, park, finish ---------------------------------

    async def tick(self, owner: str, limit: int, now: int) -> tuple[list[ClaimedRun], int | None]:
        return await self._write(self._tick, owner, limit, now)

    def _tick(self, c: sqlite3.Connection, owner: str, limit: int, now: int) -> tuple[list[ClaimedRun], int | None]:
        self._deliver_due(c, now, 1000)
        self._fire_timers(c, now, 1000)
        claimed = self._claim(c, owner, limit) if limit > 0 else []
        return claimed, c.execute(Q["next_due"]).fetchone()[0]

    def _claim(self, c: sqlite3.Connection, owner: str, limit: int) -> list[ClaimedRun]:
        claimed = []
        for row in c.execute(Q["claim_runs"], {"owner": owner, "limit": limit}).fetchall():
            event = event_from_row(c.execute(Q["event_by_id"], {"id": row["event_id"]}).fetchone())
            steps = {s.id: s for s in self._steps(c, row["id"])}
            claimed.append(ClaimedRun(row["id"], row["function_id"], event, row["created_at"], steps))
        return claimed

    def _steps(self, c: sqlite3.Connection, run_id: str) -> list[StepRow]:
        return [StepRow(*r) for r in c.execute(Q["steps_of_run"], {"run_id": run_id})]

    async def record_step(self, run_id: str, owner: str, step: StepWrite, timer: TimerWrite | None,
                          events: list[NewEvent], now: int, dedup_since: int,
                          handle: HandleWrite | None = None) -> tuple[str, list[str]]:  # fmt: skip
        return await self._write(self._record_step, run_id, owner, step, timer, events, now, dedup_since, handle)

    def _record_step(self, c: sqlite3.Connection, run_id: str, owner: str, step: StepWrite,
                     timer: TimerWrite | None, events: list[NewEvent], now: int, dedup_since: int,
                     handle: HandleWrite | None) -> tuple[str, list[str]]:  # fmt: skip
        control = c.execute(Q["run_control"], {"run_id": run_id}).fetchone()
        if control is None or control["owner"] != owner:
            return Control.LOST, []
        ids = self._send(c, events, now, True, dedup_since) if events else []
        params = {"run_id": run_id, **step.__dict__}
        if events:
            params["output"] = _serde.dumps(ids)
        c.execute(Q["upsert_step"], params)
        if timer is not None:
            c.execute(Q["insert_timer"], {"run_id": run_id, **timer.__dict__})
        else:  # a retried step that ended: its backoff timer, if any, has no more purpose
            c.execute(Q["delete_timer"], {"run_id": run_id, "step_id": step.id})
        if handle is not None:
            c.execute(Q["insert_handle"], {"run_id": run_id, **handle.__dict__})
        return (Control.CANCEL if control["cancel_requested"] else Control.CONTINUE), ids

    async def park(self, run_id: str, owner: str, status: str, steps: list[StepWrite], timers: list[TimerWrite],
                   waits: list[WaitWrite], events: list[NewEvent], now: int) -> tuple[str, dict[str, StepRow]]:  # fmt: skip
        return await self._write(self._park, run_id, owner, status, steps, timers, waits, events, now)

    def _park(self, c: sqlite3.Connection, run_id: str, owner: str, status: str, steps: list[StepWrite],
              timers: list[TimerWrite], waits: list[WaitWrite], events: list[NewEvent],
              now: int) -> tuple[str, dict[str, StepRow]]:  # fmt: skip
        control = c.execute(Q["run_control"], {"run_id": run_id}).fetchone()
        if control is None or control["owner"] != owner:
            return Park.LOST, {}
        if control["cancel_requested"]:
            return Park.CANCEL, {}
        for step in steps:
            c.execute(Q["upsert_step"], {"run_id": run_id, **step.__dict__})
        for timer in timers:
            c.execute(Q["insert_timer"], {"run_id": run_id, **timer.__dict__})
        for event in events:
            self._insert_event(c, event, now)
        resolved = False
        for wait in waits:
            resolved = self._register_wait(c, run_id, wait, now) or resolved
        if not resolved and c.execute(Q["park_run"], {"run_id": run_id, "owner": owner, "status": status}).rowcount:
            return Park.PARKED, {}
        c.execute(Q["clear_resume"], {"run_id": run_id})
        return Park.AGAIN, {s.id: s for s in self._steps(c, run_id)}

    async def finish(self, run_id: str, owner: str | None, status: str, output: str | None,
                     error: dict[str, str] | None, now: int) -> bool:  # fmt: skip
        return await self._write(self._finish, run_id, owner, status, output, error, now)

    def _finish(self, c: sqlite3.Connection, run_id: str, owner: str | None, status: str, output: str | None,
                error: dict[str, str] | None, now: int) -> bool:  # fmt: skip
        row = c.execute(Q["get_run"], {"run_id": run_id}).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            return False
        if row["cancel_requested"] and status != "cancelled":
            status, output, error = "cancelled", None, CANCELLED
        params = {"run_id": run_id, "status": status, "output": output, "now": now,
                  "error": None if error is None else _serde.dumps(error)}  # fmt: skip
        if c.execute(Q["finish_run"], params).rowcount != 1:
            return False
        c.execute(Q["delete_timers_of_run"], {"run_id": run_id})
        c.execute(Q["delete_waits_of_run"], {"run_id": run_id})
        for event in self.hooks.system_events(run_from_row(row), status, error, _serde.loads(output)):
            self._insert_event(c, event, now)
        return True

    async def back_off(self, run_id: str, owner: str, due_at: int) -> None:
        def back_off(c: sqlite3.Connection) -> None:
            if c.execute(Q["backoff_run"], {"run_id": run_id, "owner": owner}).rowcount:
                c.execute(
                    Q["insert_timer"], {"run_id": run_id, "step_id": "#backoff", "kind": "retry", "due_at": due_at}
                )

        await self._write(back_off)

    async def cancel(self, run_id: str, now: int) -> str:
        return await self._write(self._cancel, run_id, now)

    def _cancel(self, c: sqlite3.Connection, run_id: str, now: int) -> str:
        row = c.execute(Q["get_run"], {"run_id": run_id}).fetchone()
        if row is None or row["status"] in ("completed", "failed", "cancelled"):
            return "ended"
        if row["status"] == "running":
            c.execute(Q["request_cancel"], {"run_id": run_id})
            return "requested"
        self._finish(c, run_id, None, "cancelled", None, CANCELLED, now)
        return "cancelled"

    # -- timers -----------------------------------------------------------

    def _fire_timers(self, c: sqlite3.Connection, now: int, limit: int) -> int:
        rows = c.execute(Q["due_timers"], {"now": now, "limit": limit}).fetchall()
        for row in rows:
            key = {"run_id": row["run_id"], "step_id": row["step_id"]}
            c.execute(Q["delete_timer"], key)
            if row["kind"] == "sleep":
                c.execute(Q["complete_sleep"], {**key, "now": row["due_at"]})
            elif row["kind"] != "retry":
                self._wait_timed_out(c, row["run_id"], row["step_id"], row["kind"], row["due_at"])
                continue
            c.execute(Q["wake_run"], {"run_id": row["run_id"], "now": now})
        return len(rows)

    async def resume(self, token_hash: str, data: str | None, now: int) -> bool:
        return await self._write(self._resume, token_hash, data, now)

    async def peek_handle(self, token_hash: str, now: int) -> tuple[bool, str | None]:
        def read(c: sqlite3.Connection) -> tuple[bool, str | None]:
            h = c.execute(Q["handle_by_hash"], {"token_hash": token_hash}).fetchone()
            usable = h is not None and h["used_at"] is None and h["expires_at"] > now and h["status"] not in (
                "completed", "failed", "cancelled")  # fmt: skip
            return usable, (h["redirect_url"] if h is not None else None)

        return await self._read(read)

    async def next_due(self) -> int | None:
        return await self._read(lambda c: c.execute(Q["next_due"]).fetchone()[0])

    async def has_work(self, now: int) -> bool:
        return await self._read(lambda c: bool(c.execute(Q["has_work"], {"now": now}).fetchone()[0]))

    # -- reads ------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run | None:
        def read(c: sqlite3.Connection) -> Run | None:
            row = c.execute(Q["get_run"], {"run_id": run_id}).fetchone()
            return None if row is None else run_from_row(row, self._steps(c, run_id))

        return await self._read(read)

    async def list_runs(self, function_id: str | None, status: str | None, limit: int) -> list[Run]:
        params = {"function_id": function_id, "status": status, "limit": limit}
        return await self._read(lambda c: [run_from_row(r) for r in c.execute(Q["list_runs"], params)])

    async def runs_for_event(self, event_id: str) -> list[Run]:
        return await self._read(
            lambda c: [run_from_row(r) for r in c.execute(Q["runs_for_event"], {"event_id": event_id})]
        )

    async def list_events(self, name: str | None, limit: int) -> list[EventRecord]:
        params = {"name": name, "before": None, "limit": limit}
        return await self._read(lambda c: [event_record(r) for r in c.execute(Q["list_events"], params)])

    async def get_event(self, event_id: str) -> EventRecord | None:
        def read(c: sqlite3.Connection) -> EventRecord | None:
            row = c.execute(Q["get_event"], {"event_id": event_id}).fetchone()
            return None if row is None else event_record(row)

        return await self._read(read)

    async def runs_resumed_by_event(self, event_id: str) -> list[Run]:
        return await self._read(
            lambda c: [run_from_row(r) for r in c.execute(Q["runs_resumed_by_event"], {"event_id": event_id})]
        )

    async def list_waits(self, run_id: str | None, limit: int) -> list[WaitRow]:
        def read(c: sqlite3.Connection) -> list[WaitRow]:
            rows = c.execute(Q["list_waits"], {"run_id": run_id, "limit": limit}).fetchall()
            return [WaitRow(r["run_id"], r["function_id"], r["step_id"], r["kind"],
                            [n for n in r["names"].split("\x1f") if n], r["shape"], r["match_key"], r["if_exp"],
                            r["created_at"], r["due_at"], r["handle_step"], r["redirect_url"]) for r in rows]  # fmt: skip

        return await self._read(read)

    async def counts(self) -> Counts:
        def read(c: sqlite3.Connection) -> Counts:
            runs = {r["status"]: r["n"] for r in c.execute(Q["count_runs_by_status"])}
            waits = c.execute(Q["count_waits"]).fetchone()
            return Counts(runs, waits["open"], waits["scanned"])

        return await self._read(read)

    # -- workers ----------------------------------------------------------

    async def heartbeat(self, owner: str, wall_now: int) -> None:
        await self._write(lambda c: c.execute(Q["upsert_worker"], {"id": owner, "now": wall_now}))

    async def recover(self, alive_since: int, now: int) -> int:
        def recover(c: sqlite3.Connection) -> int:
            c.execute(Q["delete_dead_workers"], {"alive_since": alive_since})
            return c.execute(Q["recover_runs"], {"alive_since": alive_since, "now": now}).rowcount

        return await self._write(recover)

    async def release(self, owner: str, now: int) -> None:
        def release(c: sqlite3.Connection) -> None:
            c.execute(Q["release_runs"], {"owner": owner, "now": now})
            c.execute(Q["delete_worker"], {"id": owner})

        await self._write(release)


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Two processes opening a new file at once can get SQLITE_BUSY here without
    the busy handler being consulted, so wait and try again for a while."""
    deadline = time.monotonic() + 10
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _statements(script: str) -> list[str]:
    """Split a migration into statements, as SQLite itself would."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(part.strip().startswith("--") for part in current.strip().splitlines()):
        raise StoreError(f"a migration ends with an incomplete statement: {current.strip()[:80]!r}")
    return statements
