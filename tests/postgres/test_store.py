"""The PostgreSQL store's own machinery: deadlock victims run again, and who wakes whom."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest

import tarry
from tarry import StoreError
from tarry._store.postgres import PostgresStore
from tests.conftest import LIMIT


class Wakes:
    """Hooks that only count wake-ups (the writes here call no other hook)."""

    def __init__(self) -> None:
        self.count = 0

    def wake(self) -> None:
        self.count += 1


async def test_a_transaction_aborted_as_a_deadlock_victim_is_run_again(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE locks (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO locks VALUES (1), (2)")
    # two stores, as two processes: one store's writes that queue up together share a transaction
    store, other = PostgresStore(pg_url), PostgresStore(pg_url)
    await store.open(Wakes())  # type: ignore[arg-type]
    await other.open(Wakes())  # type: ignore[arg-type]
    both_hold_one = threading.Barrier(2, timeout=20)
    attempts: Counter[str] = Counter()

    def take(c: Any, first: int, second: int, name: str) -> str:
        attempts[name] += 1
        c.execute("SELECT id FROM locks WHERE id = %s FOR UPDATE", (first,))
        if attempts[name] == 1:
            both_hold_one.wait()  # each holds one row and now asks for the other's: a cycle
        c.execute("SELECT id FROM locks WHERE id = %s FOR UPDATE", (second,))
        return name

    try:
        done = await asyncio.gather(store._write(take, 1, 2, "a"), other._write(take, 2, 1, "b"))
    finally:
        await store.close()
        await other.close()
    assert sorted(done) == ["a", "b"]
    assert sorted(attempts.values()) == [1, 2]  # PostgreSQL aborted one; it ran again and committed


async def test_writes_wake_other_processes_but_not_their_own_and_quiet_writes_wake_none(pg_url: str) -> None:
    mine, theirs = Wakes(), Wakes()
    writer, other = PostgresStore(pg_url), PostgresStore(pg_url)
    await writer.open(mine)  # type: ignore[arg-type]
    await other.open(theirs)  # type: ignore[arg-type]
    writer.watch()  # two workers' processes
    other.watch()
    try:
        await asyncio.sleep(1)  # both listeners are listening
        mine.count = theirs.count = 0
        for _ in range(5):
            await writer._write(lambda c: c.execute("SELECT 1"), quiet=True)  # a worker's idle turn, a heartbeat
        await asyncio.sleep(1.5)
        assert (mine.count, theirs.count) == (0, 0)
        await writer._write(lambda c: c.execute("SELECT 1"))
        deadline = time.monotonic() + 5
        while theirs.count == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert theirs.count >= 1
        assert mine.count == 0  # its own NOTIFY does not wake the process that wrote
    finally:
        await writer.close()
        await other.close()


async def test_a_transaction_whose_connection_dies_before_commit_runs_again_on_a_new_one(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open(Wakes())  # type: ignore[arg-type]
    backends: list[int] = []

    def write(c: Any) -> int:
        backends.append(c.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])
        c.execute("INSERT INTO workers (id, started_at, heartbeat_at) VALUES (%s, 1, 1)", (f"w{len(backends)}",))
        if len(backends) == 1:  # the server drops this connection mid-transaction: nothing of it committed
            with psycopg.connect(pg_url, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", (backends[0],))
            c.execute("SELECT 1")
        return len(backends)

    try:
        assert await store._write(write) == 2
        assert await store._read(lambda c: c.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]) != backends[0]
        ids = await store._read(lambda c: [r["id"] for r in c.execute("SELECT id FROM workers ORDER BY id")])
    finally:
        await store.close()
    assert len(set(backends)) == 2 and ids == ["w2"]  # run again on another connection, once committed


async def test_a_transaction_whose_connection_dies_at_commit_is_not_run_again(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open(Wakes())  # type: ignore[arg-type]
    attempts = 0

    def write(c: Any) -> None:
        nonlocal attempts
        attempts += 1
        pid = c.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        with psycopg.connect(pg_url, autocommit=True) as killer:  # gone by the time COMMIT is sent
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))

    try:
        with pytest.raises(StoreError, match="terminating connection"):
            await store._write(write)  # the COMMIT may have been applied: only the caller can decide
        assert await store._read(lambda c: c.execute("SELECT 1 AS one").fetchone()["one"]) == 1
    finally:
        await store.close()
    assert attempts == 1


async def test_the_listener_reconnects_at_once_and_wakes_its_worker_for_what_it_missed(pg_url: str) -> None:
    wakes = Wakes()
    store = PostgresStore(pg_url)
    await store.open(wakes)  # type: ignore[arg-type]
    listener = "FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"
    try:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            await asyncio.sleep(0.2)
            assert not admin.execute(f"SELECT 1 {listener}").fetchone(), "a store nobody watches does not listen"
            store.watch()
            store.watch()  # once is enough: one listener
            deadline = time.monotonic() + 5
            while not admin.execute(f"SELECT 1 {listener}").fetchone():
                assert time.monotonic() < deadline, "the listener never listened"
                await asyncio.sleep(0.05)
            wakes.count = 0
            admin.execute(f"SELECT pg_terminate_backend(pid) {listener}")
            deadline = time.monotonic() + 5  # liveness: it reconnects within milliseconds
            while wakes.count == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            # a NOTIFY sent while it was away is lost: the worker is woken to look for itself
            assert wakes.count == 1
            assert len(admin.execute(f"SELECT 1 {listener}").fetchall()) == 1
    finally:
        await store.close()


async def test_a_heartbeat_folds_the_counters_so_an_unscraped_store_keeps_few_rows(pg_url: str) -> None:
    """The /metrics counters append a delta row per change on PostgreSQL; the workers fold them."""
    app = tarry.Tarry("fold", database_url=pg_url)

    @app.function(trigger="fold/start")
    async def nap(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1h")
        return "rested"

    async with app:
        await app.send([tarry.Event("fold/start") for _ in range(20)])
        await app.idle(timeout=LIMIT)
        for _ in range(20):
            await app.send(tarry.Event("fold/start"))
        await app.idle(timeout=LIMIT)
        store = app.engine.store
        await store.recover(0, app.clock.now_ms())  # what every heartbeat does
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT count(*) FROM run_counts").fetchone()
        assert rows is not None and rows[0] <= len(tarry.RunStatus), rows
        counts = await store.counts()
        assert counts.runs.get("sleeping") == 40


async def test_writes_queued_together_share_a_transaction_and_keep_their_own_outcomes(pg_url: str) -> None:
    """Group commit: writes that queue up while the lanes are busy commit in one transaction; one that fails,
    by raising or by a statement PostgreSQL refuses, changes nothing, of its own or the others'."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE written (id TEXT PRIMARY KEY, tx BIGINT NOT NULL)")
        conn.execute("INSERT INTO written VALUES ('taken', 0)")
    store = PostgresStore(pg_url)
    await store.open(Wakes())  # type: ignore[arg-type]

    def insert(c: Any, name: str) -> str:
        c.execute("INSERT INTO written VALUES (%s, txid_current())", (name,))
        if name == "w3":
            raise ValueError("w3 refused")
        return name

    try:
        names = [f"w{i}" for i in range(40)] + ["taken"]  # "taken": a duplicate key, refused by the database
        outcomes = await asyncio.gather(*(store._write(insert, n) for n in names), return_exceptions=True)
        assert [str(o) for o in outcomes[:40]] == [n if n != "w3" else "w3 refused" for n in names[:40]]
        assert isinstance(outcomes[40], StoreError) and "duplicate key" in str(outcomes[40])
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT id, tx FROM written WHERE id <> 'taken'").fetchall()
        assert sorted(r[0] for r in rows) == sorted(n for n in names[:40] if n != "w3")
        assert len({r[1] for r in rows}) < len(rows), "some writes shared a transaction"
    finally:
        await store.close()
