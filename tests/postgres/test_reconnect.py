"""After PostgreSQL drops every connection (a restart, a failover, an idle-session killer), work goes on.

A worker process and a client both hold pools of connections that all break at once; the next
run sent must be picked up promptly, and the worker must keep heartbeating its lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg
import pytest

import tarry
from tests.postgres.test_workers import _is, client, count, until

# Liveness, not speed: the worker polls every 0.5 s and the pools replace broken connections at once,
# so pick-up takes well under a second; backing off on each broken connection (1, 2, 4, 8 s...)
# took 20-30 s. The bound sits far from both, so a slow shared machine does not fail it.
PICK_UP_S = 10
pytestmark = pytest.mark.timeout(180)


def _terminate_every_backend(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row is not None else 0


def _last_heartbeat(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(max(heartbeat_at), 0) FROM workers").fetchone()
    return int(row[0]) if row is not None else 0


def test_a_run_sent_after_every_connection_was_terminated_is_picked_up_promptly(
    pg_url: str, workers: Callable[..., object]
) -> None:
    workers(TARRY_WORKER_LEASE="3s")  # a heartbeat every second

    async def scenario() -> None:
        app = await client(pg_url)
        try:
            # Busy first, so both pools hold several connections, all of which the termination breaks.
            await app.send([tarry.Event("work/start", {"n": n}) for n in range(40)])
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'waiting'", 40), 60, "waits")
            await asyncio.gather(*(app.send(tarry.Event("work/go", {"n": n})) for n in range(40)))
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'completed'", 40), 60,
                        "the first runs")  # fmt: skip
            await asyncio.gather(*(app.list_runs(limit=5) for _ in range(8)))

            assert _terminate_every_backend(pg_url) >= 3  # the worker's, the client's, the listeners
            cut = time.monotonic()
            cut_wall_ms = time.time_ns() // 1_000_000
            await app.send(tarry.Event("work/start", {"n": 1000}))
            await app.send(tarry.Event("work/go", {"n": 1000}))
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'completed'", 41), PICK_UP_S,
                        "the run sent after the termination")  # fmt: skip
            assert time.monotonic() - cut < PICK_UP_S
            await until(lambda: _heartbeat_after(pg_url, cut_wall_ms), PICK_UP_S, "a heartbeat after the termination")
        finally:
            await app.close()

    asyncio.run(scenario())
    assert count(pg_url, "SELECT count(*) FROM effects WHERE n = 1000") == 1


async def _heartbeat_after(url: str, wall_ms: int) -> bool:
    return _last_heartbeat(url) > wall_ms
