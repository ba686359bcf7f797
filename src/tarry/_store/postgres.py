"""The PostgreSQL store: the shared SQL transactions over a psycopg 3 connection pool.

Each call is one transaction on a pooled connection, run on a small thread
pool (the same shape as the SQLite store, so both share one implementation of
every transaction). Under READ COMMITTED, an event and a concurrent wait
registration take transaction advisory locks on the same (name, shape, key),
so each sees the other's committed rows. Claims use ``FOR UPDATE SKIP LOCKED``.
After writes, a background thread sends one ``NOTIFY`` per few milliseconds
(never inside the hot transactions); in a process that watches (a worker's,
``watch``) a listener wakes it.
Polling stays the guarantee; the notification only makes it fast.

Connections the server closed (a restart, a failover, an idle-session killer)
are found when they are lent, without a round trip, and replaced at once; a
transaction whose connection died before its COMMIT was sent runs once more.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from tarry._errors import StoreError
from tarry._store.base import Hooks
from tarry._store.queries import load_migrations, load_queries
from tarry._store.schema import require_schema
from tarry._store.sql import SQLStore, _database_fault, rows_isolated, settle
from tarry._store.sql_waits import Conn
from tarry._store.urls import redact_url, scrub

T = TypeVar("T")
log = logging.getLogger("tarry.store")

MIGRATION_LOCK = 0x7A77_7279  # pg_advisory_lock key: one migrator at a time
CHANNEL = "tarry_wake"
NOTIFY_EVERY_S = 0.002
DEADLOCK_RETRIES = 8
LANES = 8  # write transactions of a process at once (group commit: each takes what queued meanwhile)
MAX_BATCH = 64


class _Write:
    __slots__ = ("fn", "future", "loop", "quiet")

    def __init__(self, fn: Callable[[Conn], Any], quiet: bool, loop: asyncio.AbstractEventLoop,
                 future: asyncio.Future[Any]) -> None:  # fmt: skip
        self.fn, self.quiet, self.loop, self.future = fn, quiet, loop, future


class _Dropped(Exception):
    """The connection died before the transaction's COMMIT was sent: nothing of it was committed."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


def postgres_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1] if url.startswith("postgres://") else url


class PostgresStore(SQLStore):
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 8, *, create: bool = True) -> None:
        self.q = load_queries("postgresql")
        self.url = url
        self.create = create  # False: open an existing Tarry schema only, never create or migrate it
        self._conninfo = postgres_url(url)
        self._pool_size = pool_size
        self._pool: ConnectionPool[Any] | None = None
        self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="tarry-postgres")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hint = threading.Event()
        self._stopping = threading.Event()
        self._background: list[threading.Thread] = []
        self._watch_lock = threading.Lock()
        self._listening = False
        self._me = f"{os.getpid()}-{id(self)}"  # our NOTIFY payload, so the listener skips our own
        self._pending: list[_Write] = []
        self._pending_lock = threading.Lock()
        self._lanes = 0  # lanes committing batches now
        self._closing = False

    # -- plumbing -------------------------------------------------------------

    def _where(self) -> str:
        """host:port/db (and the query), never the user or a password."""
        parts = urlsplit(redact_url(self._conninfo))
        where = parts.netloc.rpartition("@")[2] + parts.path
        return f"{where}?{parts.query}" if parts.query else where

    def _say(self, exc: BaseException) -> str:
        """A driver's message with the URL's password hidden (libpq echoes parts of a bad URL)."""
        return scrub(str(exc), self._conninfo)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(self._guarded, fn, *args))

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            raise StoreError("the store is closed; start the app first (async with app / await app.start())")
        try:
            return self._on_a_connection(self._pool, fn, *args)
        except psycopg.Error as exc:
            raise self._store_error(exc) from exc
        except PoolTimeout as exc:
            raise StoreError(
                f"no PostgreSQL connection to {self._where()} within the timeout: {self._say(exc)}"
            ) from exc

    def _store_error(self, exc: psycopg.Error) -> StoreError:
        return StoreError(f"PostgreSQL error on {self._where()}: {self._say(exc)}".strip())

    def _on_a_connection(self, pool: ConnectionPool[Any], fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on a pooled connection; on another if that one died uncommitted.

        When the server terminates every backend, the pooled connections die one by one over some
        milliseconds: one that looked alive when lent may die at BEGIN. Each is closed once it died, so
        after at most the pool's size attempts only connections opened after the termination are left."""
        attempts = self._pool_size + 1
        for attempt in range(attempts):
            conn = self._borrow(pool)
            try:
                return fn(conn, *args)
            except _Dropped as dropped:
                conn.close()  # it may not know yet that the server has gone: the pool must not lend it again
                if attempt == attempts - 1:
                    raise dropped.error from None
                log.info("PostgreSQL connection lost before COMMIT; running the transaction again")
            finally:
                pool.putconn(conn)  # a broken one is closed by the pool, which opens another
        raise AssertionError("unreachable")

    def _borrow(self, pool: ConnectionPool[Any]) -> Conn:
        """A pooled connection the server has not closed.

        The pool's own check would sleep 1, 2, 4, 8 s... after each broken connection in turn, so a
        pool whose connections were all terminated at once stalled for tens of seconds. Here each
        broken one is handed back at once (the pool drops it and opens a new one)."""
        for _ in range(self._pool_size):  # the pool holds at most this many: then only new ones are left
            conn = pool.getconn()
            if _alive(conn):
                return conn
            conn.close()
            pool.putconn(conn)
        return pool.getconn()

    async def _write(self, fn: Callable[..., T], *args: Any, quiet: bool = False) -> T:
        """Run ``fn`` as one transaction; it returns only once that transaction is committed.

        Group commit, as on SQLite: writes that queue up while the lanes are busy run together in the
        next transaction of a lane, so one commit (and one WAL flush) serves them all. ``LANES``
        transactions run at once, on connections of the pool; a batch holds at most ``MAX_BATCH``
        writes, so that the locks it holds until its commit stay few."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._pending_lock:
            if self._pool is None or self._closing:
                raise StoreError("the store is closed; start the app first (async with app / await app.start())")
            self._pending.append(_Write((lambda conn: fn(conn, *args)) if args else fn, quiet, loop, future))
            if self._lanes < LANES:
                self._lanes += 1
                self._threads.submit(self._lane)
        result: T = await future
        return result

    def _lane(self) -> None:
        """Commit batches of the queued writes until none is left."""
        while True:
            with self._pending_lock:
                batch, self._pending[:MAX_BATCH] = self._pending[:MAX_BATCH], []
                if not batch:
                    self._lanes -= 1
                    return
            try:
                outcomes = self._guarded(self._batch, batch)
            except BaseException as exc:  # the whole batch failed: each write sees why
                outcomes = [(False, exc)] * len(batch)
            if not all(w.quiet for w in batch):  # a worker's idle turns must not wake every other worker...
                self._hint.set()
            settle([(w.loop, w.future) for w in batch], outcomes,
                   lambda e: self._store_error(e) if isinstance(e, psycopg.Error) else None)  # fmt: skip

    def _batch(self, conn: Conn, batch: list[_Write]) -> list[tuple[bool, Any]]:
        """The batch's writes in one transaction, committed; each write's outcome.

        First plainly: the first write that fails rolls everything back. The writes are functions of
        the database alone, so running them again, each under a savepoint of its own (and each row of
        a write, ``rows_isolated``), gives each its own outcome."""
        isolated = False
        for attempt in range(DEADLOCK_RETRIES):
            committing = False
            outcomes: list[tuple[bool, Any]] = []
            try:
                with conn.transaction(), rows_isolated(isolated):
                    for write in batch:
                        if not isolated:
                            outcomes.append((True, write.fn(conn)))
                            continue
                        try:
                            with conn.transaction():  # a savepoint: this write's failure undoes it alone
                                outcomes.append((True, write.fn(conn)))
                        except Exception as exc:
                            if _database_fault(exc):
                                raise
                            outcomes.append((False, exc))
                    committing = True  # leaving the block sends COMMIT
                return outcomes
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                # PostgreSQL aborted us to break a lock cycle: nothing of ours stands; try again.
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
            except psycopg.OperationalError as exc:
                # Died before COMMIT: nothing committed, safe to run again. Died during COMMIT: it may
                # have committed, so it is not run again; the callers see the error (a run backs off).
                if _lost(conn, exc) and not committing:
                    raise _Dropped(exc) from exc
                raise
            except Exception as exc:
                if isolated or _database_fault(exc):
                    raise
                if len(batch) == 1 and (isinstance(exc, psycopg.Error) or attempt == DEADLOCK_RETRIES - 1):
                    raise  # one write: its own error (a row's fault is isolated below only where rows are)
                isolated = True  # maybe one write's or one row's fault: run again, each under a savepoint
        raise AssertionError("unreachable")

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        def tx(conn: Conn) -> T:
            try:
                with conn.transaction():
                    return fn(conn, *args)
            except psycopg.OperationalError as exc:
                if _lost(conn, exc):  # a read is safe to run again
                    raise _Dropped(exc) from exc
                raise

        return await self._call(tx)

    def _lock(self, c: Conn, keys: list[str], *, shared: bool = False) -> None:
        if len(keys) == 1:
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            c.execute(f"SELECT {function}(hashtextextended(%(key)s, 0))", {"key": keys[0]})
        elif keys:  # one round trip; taken one at a time, in the caller's (sorted) order
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            c.execute(f"SELECT {function}(hashtextextended(k, 0)) FROM unnest(%(keys)s::text[]) "
                      "WITH ORDINALITY AS t(k, i) ORDER BY i", {"keys": keys})  # fmt: skip

    def _try_lock(self, c: Conn, key: str) -> bool:
        row = c.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(%(key)s, 0)) AS got", {"key": key}
        ).fetchone()
        return bool(row["got"])

    # -- lifecycle --------------------------------------------------------------

    async def open(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self._loop = asyncio.get_running_loop()
        try:
            await self._loop.run_in_executor(self._threads, self._open)
        except BaseException:
            self._threads.shutdown(wait=False)
            raise

    def _open(self) -> None:
        try:  # one plain connection first: its error says why (refused, unknown database, auth)
            psycopg.connect(self._conninfo, connect_timeout=5).close()
        except psycopg.Error as exc:
            reason = self._say(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot connect to PostgreSQL at {self._where()}: {reason}") from exc
        pool: ConnectionPool[Any] = ConnectionPool(
            self._conninfo, min_size=1, max_size=self._pool_size, open=False,
            kwargs={"row_factory": dict_row, "autocommit": True}, reconnect_timeout=60,  # checked by _borrow
        )  # fmt: skip
        try:
            pool.open(wait=True, timeout=5)
        except PoolTimeout as exc:
            pool.close()
            raise StoreError(
                f"cannot connect to PostgreSQL at {self._where()}: {scrub(_cause(exc), self._conninfo)}"
            ) from exc
        self._pool = pool
        try:
            with pool.connection() as conn:
                if self.create:
                    self._migrate(conn)
                else:
                    self._check_schema(conn)
        except psycopg.Error as exc:
            pool.close()
            self._pool = None
            raise StoreError(f"cannot migrate the PostgreSQL database at {self._where()}: {self._say(exc)}") from exc
        except StoreError:
            pool.close()
            self._pool = None
            raise
        self._start_thread(self._notifier)

    def _start_thread(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"tarry-{target.__name__.strip('_')}", daemon=True)
        thread.start()
        self._background.append(thread)

    def _migrate(self, conn: Conn) -> None:
        conn.execute("SELECT pg_advisory_lock(%(key)s)", {"key": MIGRATION_LOCK})
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tarry_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            for version, name, sql in load_migrations("postgresql"):
                with conn.transaction():
                    done = conn.execute("SELECT 1 FROM tarry_migrations WHERE version = %(v)s", {"v": version})
                    if done.fetchone():
                        continue
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO tarry_migrations (version, name, applied_at) VALUES (%(v)s, %(n)s, %(t)s)",
                        {"v": version, "n": name, "t": time.time_ns() // 1_000_000},
                    )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%(key)s)", {"key": MIGRATION_LOCK})

    def _check_schema(self, conn: Conn) -> None:
        present = bool(self._x(conn, "schema_present").fetchone()["present"])
        applied = [row["version"] for row in self._x(conn, "schema_versions")] if present else []
        require_schema("postgresql", self._where(), present, applied)

    async def applied_migrations(self) -> list[int]:
        return await self._read(
            lambda c: [r["version"] for r in c.execute("SELECT version FROM tarry_migrations ORDER BY version")]
        )

    async def close(self) -> None:
        with self._pending_lock:
            self._closing = True  # later writes fail at once; those queued still commit
        deadline = time.monotonic() + 10
        while (self._lanes or self._pending) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        with self._watch_lock:
            self._stopping.set()
        self._hint.set()
        for thread in self._background:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, pool.close)
        self._threads.shutdown(wait=True)

    # -- wake-ups: NOTIFY after writes (batched), LISTEN to wake this worker -------

    def watch(self) -> None:
        """Wake this process (``Hooks.wake``) soon after another process writes, until ``close``: a
        connection of its own LISTENs; our own NOTIFYs are skipped (our writes woke us already)."""
        with self._watch_lock:
            if self._pool is None or self._stopping.is_set() or self._listening:
                return
            self._listening = True
            self._start_thread(self._listener)

    def _notifier(self) -> None:
        while not self._stopping.is_set():
            self._hint.wait()
            if self._stopping.is_set():
                return
            self._hint.clear()
            try:
                assert self._pool is not None
                conn = self._borrow(self._pool)
                try:
                    conn.execute("SELECT pg_notify(%(channel)s, %(me)s)", {"channel": CHANNEL, "me": self._me})
                finally:
                    self._pool.putconn(conn)
            except Exception:
                log.debug("NOTIFY failed; workers will poll", exc_info=True)
                time.sleep(0.5)
            time.sleep(NOTIFY_EVERY_S)

    def _listener(self) -> None:
        lost = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if lost and self._loop is not None and not self._loop.is_closed():
                        self._loop.call_soon_threadsafe(self.hooks.wake)  # what was sent while we were away
                    lost = False
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=0.5, stop_after=1):
                            if notice.payload == self._me:
                                continue  # our own writes already woke this process
                            if self._loop is not None and not self._loop.is_closed():
                                self._loop.call_soon_threadsafe(self.hooks.wake)
            except Exception:
                if not self._stopping.is_set():
                    log.debug("LISTEN connection lost; reconnecting", exc_info=True)
                    if lost:  # reconnecting failed too: the server is not back yet
                        time.sleep(0.5)
                    lost = True


def _alive(conn: Conn) -> bool:
    """Whether the server still holds an idle connection open, mostly without a round trip.

    An idle connection has nothing to read: a readable socket holds the server's goodbye (a
    terminated backend's FATAL) or its end, and then a round trip tells."""
    if conn.closed:
        return False
    try:
        if not _readable(conn.fileno()):
            return True
    except (OSError, ValueError):
        pass  # cannot tell from the socket: ask the server
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        return False
    return True


def _lost(conn: Conn, error: psycopg.OperationalError) -> bool:
    """Whether the error means the connection is gone: closed, or a terminated backend's last words
    (57P01 and kin: the FATAL may arrive as the answer to our statement, before the socket's end)."""
    return bool(conn.closed or conn.broken or (error.sqlstate or "").startswith(("08", "57P")))


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):  # no limit on the descriptor's number, unlike select()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def _cause(exc: BaseException) -> str:
    text = str(exc)
    for attempt in getattr(exc, "__cause__", None), getattr(exc, "__context__", None):
        if attempt is not None:
            text = str(attempt) or text
    return text.strip().splitlines()[0] if text.strip() else "connection refused"
