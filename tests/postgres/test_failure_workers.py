"""A failure handler runs exactly once per failed run with two `tarry worker` processes on one PostgreSQL
database: the failed run's event is delivered once, in the transaction that ends the run, and routing
it to the handler is part of that delivery."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

import tarry
from tests.postgres import failure_app
from tests.postgres.conftest import spawn_worker, stop_workers

APP = "tests/postgres/failure_app.py:app"
RUNS = 60
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def two_workers(pg_url: str) -> Iterator[list[subprocess.Popen[str]]]:
    started = [spawn_worker(APP, pg_url) for _ in range(2)]
    yield started
    stop_workers(started)


def test_each_failed_run_is_handled_exactly_once_by_two_worker_processes(
    pg_url: str, two_workers: list[subprocess.Popen[str]]
) -> None:
    async def scenario() -> None:
        client = tarry.Tarry("failures", database_url=pg_url)
        client._registry = failure_app.app._registry  # the same functions, as a web app imports them
        await client.start(worker=False)
        try:
            await client.send([tarry.Event("shop/charge", {"n": n}) for n in range(RUNS)])
            deadline = time.monotonic() + 120
            while (await client.engine.store.counts()).runs.get("completed", 0) < RUNS:
                assert time.monotonic() < deadline, "every failed run to be handled"
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # a second handler run, if there were one, would have started by now
        finally:
            await client.close()

    asyncio.run(scenario())
    with psycopg.connect(pg_url) as conn:
        runs = conn.execute("SELECT function_id, status, id FROM runs").fetchall()
        effects = conn.execute("SELECT run_id, step, pid FROM effects").fetchall()
    statuses = Counter((function_id, status) for function_id, status, _ in runs)
    assert statuses == {("charge", "failed"): RUNS, ("charge-failure", "completed"): RUNS}
    failed = {run_id for function_id, _, run_id in runs if function_id == "charge"}
    handled = Counter(run_id for run_id, _, _ in effects)
    assert set(handled) == failed and set(handled.values()) == {1}, "each failed run handled once, by one body"
    assert len({pid for *_, pid in effects}) == 2, "both processes handled failures"
