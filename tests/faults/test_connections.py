"""PostgreSQL backends terminated under load, again and again: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

import tarry
from tests.faults.conftest import PRINTED, Workers, client, effects, until

T = TypeVar("T")
RUNS = 60
LIVENESS_S = 15  # for 60 runs to reach their next state after a cut: ample (about 2 s here)
pytestmark = pytest.mark.timeout(90)


def terminate_all(url: str) -> int:
    """Terminate every other backend connected to the test's database; return how many."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


async def retried(call: Callable[[], Awaitable[T]], seconds: float = 30) -> T:
    """``call``, again while the store fails (our own connections are cut too); sends carry ids, so a
    send whose commit went through before its connection was cut is deduplicated."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await call()
        except tarry.StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("fault_url", ["postgresql"], indirect=True)
def test_terminated_backends_lose_and_duplicate_nothing(fault_url: str, workers: Workers, tmp_path: Path) -> None:
    worker = workers()

    async def scenario() -> tuple[list[tarry.Run], int]:
        app = await client(fault_url)
        try:
            cut = 0

            async def send_all(name: str) -> int:  # a cut halfway through: sends go on through it
                for n in range(RUNS):
                    if n == RUNS // 2:
                        await asyncio.to_thread(terminate_all, fault_url)
                    await retried(functools.partial(app.send, tarry.Event(name, {"n": n}, id=f"{name}-{n}")))
                return 1

            async def count(status: str) -> bool:
                return len(await retried(lambda: app.list_runs(status=status, limit=1000))) == RUNS

            cut += await send_all("fault/start")  # the worker runs steps and sleeps through the cut
            await until(lambda: count("waiting"), LIVENESS_S, "every run to wait after a cut")
            cut += await asyncio.to_thread(terminate_all, fault_url) > 0  # idle: each pooled connection dies
            cut += await send_all("fault/go")
            await until(lambda: count("completed"), LIVENESS_S, "every run to complete after the cuts")
            runs = await app.list_runs(limit=1000)
            return [await app.wait_for_run(r.id, timeout=5) for r in runs], cut
        finally:
            await app.close()

    runs, cut = asyncio.run(scenario())
    assert cut == 3, "every backend was terminated three times"
    assert worker.poll() is None, "the worker survived the cuts"
    assert len(runs) == RUNS and sorted(r.output for r in runs) == list(range(RUNS)), "one run per event, each resumed"
    with psycopg.connect(fault_url) as conn:
        events: dict[str, int] = dict(conn.execute("SELECT name, count(*) FROM events GROUP BY name").fetchall())
        consumed = Counter(r for (r,) in conn.execute("SELECT run_id FROM consumed"))
    assert events["fault/start"] == RUNS and events["fault/go"] == RUNS, "every event stored once"
    assert set(consumed.values()) == {1} and len(consumed) == RUNS, "each wait resumed once"
    failed = Counter(re.findall(r"run (\S+): recording step '(\w+)' failed", "".join(PRINTED[worker.pid])))
    done = effects(tmp_path)
    for run in runs:
        for step in ("one", "two"):  # a step runs again only when its record did not commit
            assert 1 <= done[run.id, step] <= 1 + failed[run.id, step], (run.id, step, done[run.id, step])
