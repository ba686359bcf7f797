"""The PostgreSQL store: the shared SQL transactions over a psycopg 3 connection pool.

Each call is one transaction on a pooled connection, run on a small thread
pool (the same shape as the SQLite store, so both share one implementation of
every transaction). Under READ COMMITTED, an event and a concurrent wait
registration take transaction advisory locks on the same (name, shape, key),
so each sees the other's committed rows. Claims use ``FOR UPDATE SKIP LOCKED``.
After writes, a background thread sends one ``NOTIFY`` per few milliseconds
(never inside the hot transactions); a listener wakes this process's worker.
Polling stays the guarantee; the notification only makes it fast.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
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
from tarry._store.sql import SQLStore
from tarry._store.sql_waits import Conn
from tarry._store.urls import redact_url, scrub

T = TypeVar("T")
log = logging.getLogger("tarry.store")

MIGRATION_LOCK = 0x7A77_7279  # pg_advisory_lock key: one migrator at a time
CHANNEL = "tarry_wake"
NOTIFY_EVERY_S = 0.002
DEADLOCK_RETRIES = 8


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
        self._me = f"{os.getpid()}-{id(self)}"  # our NOTIFY payload, so the listener skips our own

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
            with self._pool.connection() as conn:
                return fn(conn, *args)
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL error on {self._where()}: {self._say(exc)}".strip()) from exc
        except PoolTimeout as exc:
            raise StoreError(
                f"no PostgreSQL connection to {self._where()} within the timeout: {self._say(exc)}"
            ) from exc

    async def _write(self, fn: Callable[..., T], *args: Any, quiet: bool = False) -> T:
        def tx(conn: Conn) -> T:
            for attempt in range(DEADLOCK_RETRIES):
                try:
                    with conn.transaction():
                        result = fn(conn, *args)
                    break
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    # PostgreSQL aborted us to break a lock cycle: nothing of ours stands; try again.
                    if attempt == DEADLOCK_RETRIES - 1:
                        raise
                    time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
            if not quiet:  # a worker's idle turns must not wake every other worker, which wake it...
                self._hint.set()
            return result

        return await self._call(tx)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        def tx(conn: Conn) -> T:
            with conn.transaction():
                return fn(conn, *args)

        return await self._call(tx)

    def _lock(self, c: Conn, keys: list[str], *, shared: bool = False) -> None:
        if len(keys) == 1:
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            c.execute(f"SELECT {function}(hashtextextended(%(key)s, 0))", {"key": keys[0]})
        elif keys:  # one round trip; taken one at a time, in the caller's (sorted) order
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            c.execute(f"SELECT {function}(hashtextextended(k, 0)) FROM unnest(%(keys)s::text[]) "
                      "WITH ORDINALITY AS t(k, i) ORDER BY i", {"keys": keys})  # fmt: skip

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
            kwargs={"row_factory": dict_row, "autocommit": True}, check=ConnectionPool.check_connection,
            reconnect_timeout=60,
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
        for target in (self._notifier, self._listener):
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
        self._stopping.set()
        self._hint.set()
        for thread in self._background:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, pool.close)
        self._threads.shutdown(wait=True)

    # -- wake-ups: NOTIFY after writes (batched), LISTEN to wake this worker -------

    def _notifier(self) -> None:
        while not self._stopping.is_set():
            self._hint.wait()
            if self._stopping.is_set():
                return
            self._hint.clear()
            try:
                assert self._pool is not None
                with self._pool.connection(timeout=5) as conn:
                    conn.execute("SELECT pg_notify(%(channel)s, %(me)s)", {"channel": CHANNEL, "me": self._me})
            except Exception:
                log.debug("NOTIFY failed; workers will poll", exc_info=True)
                time.sleep(0.5)
            time.sleep(NOTIFY_EVERY_S)

    def _listener(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=0.5, stop_after=1):
                            if notice.payload == self._me:
                                continue  # our own writes already woke this process
                            if self._loop is not None and not self._loop.is_closed():
                                self._loop.call_soon_threadsafe(self.hooks.wake)
            except Exception:
                if not self._stopping.is_set():
                    log.debug("LISTEN connection lost; reconnecting", exc_info=True)
                    time.sleep(0.5)


def _cause(exc: BaseException) -> str:
    text = str(exc)
    for attempt in getattr(exc, "__cause__", None), getattr(exc, "__context__", None):
        if attempt is not None:
            text = str(attempt) or text
    return text.strip().splitlines()[0] if text.strip() else "connection refused"
