"""The SQLite store: one connection, one thread, each call atomic on its own.

Every method runs on a dedicated thread, so the event loop never blocks on
the disk. Writes take ``BEGIN IMMEDIATE`` — SQLite's single writer is what
orders an event against a concurrent wait or claim — and those that queue up
behind a commit share the next one, each in its own savepoint (group commit).
A worker's process watches the write-ahead log (``watch``): a commit of another
process wakes its worker within milliseconds instead of at its next poll.
This module knows SQL, not workflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from tarry._errors import StoreError
from tarry._store.base import (
    Hooks,
)
from tarry._store.queries import load_migrations, load_queries
from tarry._store.schema import require_schema
from tarry._store.sql import SQLStore, rows_isolated, settle
from tarry._store.urls import redact_url
from tarry._store.watch import FileWatch

T = TypeVar("T")
log = logging.getLogger("tarry.store")
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "off": "OFF", "extra": "EXTRA"}

#: what to do about the errors a full disk causes: SQLite reports running out of space (ENOSPC)
#: as SQLITE_FULL, and a write refused for the file's size (EFBIG, a file-size limit) as an I/O error
_FULL = "the disk holding the database is full: free space, then retry"
_WRITE = "a write failed: the disk may be full, the file at a size limit, or the disk failing"
_HINTS = {"SQLITE_FULL": _FULL, "SQLITE_IOERR_WRITE": _WRITE, "SQLITE_IOERR_TRUNCATE": _WRITE}


def sqlite_path(url: str) -> tuple[str, dict[str, str]]:
    """The file path (or ``:memory:``) and options of a ``sqlite://`` URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"invalid database URL {redact_url(url)!r}: use sqlite:///relative.db or sqlite:////absolute.db"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ValueError(f"invalid database URL {redact_url(url)!r}: no file path after sqlite:///")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    sync = options.get("synchronous", "full").lower()
    if sync not in _SYNCHRONOUS:
        raise ValueError(
            f"invalid database URL {redact_url(url)!r}: synchronous must be one of {', '.join(_SYNCHRONOUS)}"
        )
    return path, options


class SQLiteStore(SQLStore):
    dialect = "sqlite"
    hooks: Hooks

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.q = load_queries("sqlite")
        self.url = url
        self.create = create  # False: open an existing Tarry database only, never create or migrate one
        self.path, self.options = sqlite_path(url)
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tarry-sqlite")
        self._pending: list[
            tuple[Callable[[sqlite3.Connection], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]
        ] = []
        self._pending_lock = threading.Lock()
        self._drain_scheduled = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: FileWatch | None = None
        self._version: int | None = None  # PRAGMA data_version at the last look

    # -- plumbing ---------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(self._guarded, fn, *args))

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc

    async def _write(self, fn: Callable[..., T], *args: Any, quiet: bool = False) -> T:
        """Run ``fn`` as one transaction; it returns only once that transaction is committed.

        Group commit: writes that queue up while one commit is under way run together in the
        next ``BEGIN IMMEDIATE ... COMMIT``, each in a savepoint of its own, so one failing
        changes nothing of it and nothing of the others, and one fsync serves them all.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._pending_lock:
            if self._closed:
                raise StoreError("the store is closed; start the app first (async with app / await app.start())")
            self._pending.append((lambda conn: fn(conn, *args), loop, future))
            schedule, self._drain_scheduled = not self._drain_scheduled, True
            if schedule:
                self._thread.submit(self._drain)
        result: T = await future
        return result

    def _drain(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
            self._drain_scheduled = False
        try:
            conn = self._connection()
            outcomes = self._commit(conn, batch, isolated=False) or self._commit(conn, batch, isolated=True)
        except BaseException as exc:
            outcomes = [(False, exc)] * len(batch)
        settle([(loop, future) for _, loop, future in batch], outcomes,
               lambda e: store_error(self.path, e) if isinstance(e, sqlite3.Error) else None)  # fmt: skip

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[Any], isolated: bool) -> list[tuple[bool, Any]]:
        """Run the batch's writes in one transaction and commit it.

        Not ``isolated``: no savepoints (they cost two statements a write, and copies of the pages
        they touch); the first write that fails rolls everything back and returns [] — the writes
        are functions of the database alone, so running them again, ``isolated`` (each write, and
        each row of a write, ``rows_isolated``), gives each its own outcome."""
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            with rows_isolated(isolated):
                SQLiteStore._run_batch(conn, batch, isolated, outcomes)
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not isolated:
                return []
            raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # never leave the write lock held
                conn.execute("ROLLBACK")
            raise
        return outcomes

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[Any], isolated: bool,
                   outcomes: list[tuple[bool, Any]]) -> None:  # fmt: skip
        for work, _, _ in batch:
            if not isolated:
                outcomes.append((True, work(conn)))
                continue
            conn.execute("SAVEPOINT tarry_write")
            try:
                outcomes.append((True, work(conn)))
                conn.execute("RELEASE tarry_write")
            except BaseException as exc:  # this write only: undo it, keep the others
                conn.execute("ROLLBACK TO tarry_write")
                conn.execute("RELEASE tarry_write")
                outcomes.append((False, exc))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(lambda: fn(self._connection(), *args))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed; start the app first (async with app / await app.start())")
        return self._conn

    # -- lifecycle --------------------------------------------------------

    async def open(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self._loop = asyncio.get_running_loop()
        try:
            await self._call(self._open)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise

    def _open(self) -> None:
        if not self.create and (self.path == ":memory:" or not Path(self.path).is_file()):
            raise StoreError(f"no Tarry database at {self.path} (start the app or run tarry migrate)")
        if self.create and self.path != ":memory:":
            folder = Path(self.path).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder {str(folder)!r} for the SQLite database: {exc}") from exc
            if not os.access(folder, os.W_OK) or (Path(self.path).exists() and not os.access(self.path, os.W_OK)):
                raise StoreError(f"cannot write the SQLite database {self.path!r}: permission denied")
        try:
            target = self.path if self.create else Path(self.path).resolve().as_uri() + "?mode=rw"  # never creates
            conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=not self.create)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite database {self.path!r}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            if self.path != ":memory:":
                _set_wal(conn)
            conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[self.options.get('synchronous', 'full').lower()]}")
            conn.execute("PRAGMA foreign_keys = ON")
            if self.create:
                self._migrate(conn)
            else:
                self._check_schema(conn)
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

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        present = bool(self._x(conn, "schema_present").fetchone()["present"])
        applied = [row["version"] for row in self._x(conn, "schema_versions")] if present else []
        require_schema("sqlite", self.path, present, applied)

    async def applied_migrations(self) -> list[int]:
        return await self._read(
            lambda c: [r[0] for r in c.execute("SELECT version FROM tarry_migrations ORDER BY version")]
        )

    async def close(self) -> None:
        with self._pending_lock:
            self._closed = True  # later writes fail at once; those queued still run below
            watch, self._watch = self._watch, None
        if watch is not None:
            await asyncio.get_running_loop().run_in_executor(None, watch.close)
        if self._conn is not None:
            await self._call(self._close)
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        assert self._conn is not None
        self._conn.close()
        self._conn = None

    # -- wake-ups: a commit of another process wakes this worker -------------------

    def watch(self) -> None:
        """Wake this process (``Hooks.wake``) soon after another connection commits, until ``close``.

        A thread watches the write-ahead log (``FileWatch``); after a write it asks the store's own
        connection for ``PRAGMA data_version``, which moves only for commits of other connections, so
        this process's commits (which wake it already) do not wake it twice. Not for ``:memory:``."""
        with self._pending_lock:
            if self._closed or self._conn is None or self._watch is not None or self.path == ":memory:":
                return
            try:
                self._watch = FileWatch(os.path.realpath(self.path) + "-wal", self._changed)
            except OSError as exc:  # out of descriptors, say: the poll still finds the work
                log.warning("cannot watch %s for other processes' commits (%s); the worker polls", self.path, exc)
                return
            self._thread.submit(self._look)  # the version to compare with (and one wake-up: harmless)

    def _changed(self) -> bool:
        """The log was written (on the watch's thread): whether another connection's commit is seen."""
        with self._pending_lock:
            if self._closed:
                return True
            look = self._thread.submit(self._look)
        try:
            return look.result(timeout=5)
        except Exception:  # a long transaction, or closing: the next write or the poll tells
            return False

    def _look(self) -> bool:
        """On the store's thread: wake this process if data_version moved since the last look."""
        if self._conn is None:
            return True
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return False
        self._version = version
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(self.hooks.wake)
        return True


def store_error(path: str, exc: sqlite3.Error) -> StoreError:
    """The driver's error as Tarry's, saying what to do when a full disk is the likely cause."""
    name = getattr(exc, "sqlite_errorname", None)
    hint = _HINTS.get(name) if isinstance(name, str) else None
    return StoreError(f"SQLite error on {path}: {exc}" + (f" ({name}: {hint})" if hint else ""))


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
