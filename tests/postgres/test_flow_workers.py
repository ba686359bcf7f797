"""A concurrency limit holds across three `tarry worker` processes on one PostgreSQL database.

Every step body records the interval it ran in; the overlap of one key's intervals is at most the
limit for the limited function, and above it for the same load on a function without a limit (so
the measurement would see a broken limit).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import psycopg
import pytest

import tarry
from tests.postgres import flow_app
from tests.postgres.conftest import spawn_worker, stop_workers

APP = "tests/postgres/flow_app.py:app"
KEYS = 30
RUNS_PER_KEY = 20  # enough claims at once that a limit broken by a race between workers shows
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def flow_url(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE spans (function TEXT, run_id TEXT, key TEXT, began DOUBLE PRECISION, "
            "ended DOUBLE PRECISION, pid INTEGER)"
        )
    return pg_url


@pytest.fixture
def three_workers(flow_url: str) -> Iterator[list[subprocess.Popen[str]]]:
    started = [spawn_worker(APP, flow_url) for _ in range(3)]
    yield started
    stop_workers(started)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (one ending as another begins: not both)."""
    edges = sorted([(began, 1) for began, _ in spans] + [(ended, -1) for _, ended in spans])
    open_now = most = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def test_a_concurrency_limit_holds_across_three_worker_processes(
    flow_url: str, three_workers: list[subprocess.Popen[str]]
) -> None:
    total = KEYS * RUNS_PER_KEY

    async def scenario() -> None:
        client = tarry.Tarry("flow", database_url=flow_url)
        client._registry = flow_app.app._registry  # the same functions, as a web app imports them
        await client.start(worker=False)
        try:
            # a key's runs next to each other: a worker's one claim would take all of them without the limit
            events = [tarry.Event(name, {"key": f"k{k}", "n": n}) for name in ("flow/limited", "flow/free")
                      for k in range(KEYS) for n in range(RUNS_PER_KEY)]  # fmt: skip
            await client.send(events)
            deadline = time.monotonic() + 120
            while (await client.engine.store.counts()).runs.get("completed", 0) < 2 * total:
                assert time.monotonic() < deadline, "every run to complete"
                await asyncio.sleep(0.2)
        finally:
            await client.close()

    asyncio.run(scenario())
    with psycopg.connect(flow_url) as conn:
        rows = conn.execute("SELECT function, run_id, key, began, ended, pid FROM spans").fetchall()
        statuses: dict[str, int] = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
    assert statuses == {"completed": 2 * total}
    spans: dict[str, dict[str, list[tuple[float, float]]]] = {"limited": defaultdict(list), "free": defaultdict(list)}
    for function, _, key, began, ended, _ in rows:
        spans[function][key].append((began, ended))
    for function in ("limited", "free"):
        bodies = Counter(run_id for f, run_id, *_ in rows if f == function)
        assert len(bodies) == total and set(bodies.values()) == {1}, f"{function}: each run's body ran exactly once"
    limited = {key: most_at_once(s) for key, s in spans["limited"].items()}
    free = {key: most_at_once(s) for key, s in spans["free"].items()}
    over = {key: most for key, most in limited.items() if most > flow_app.LIMIT}
    assert len(limited) == KEYS and not over, f"runs of one key at once, above the limit: {over}"
    assert max(limited.values()) == flow_app.LIMIT, "a key ran as many runs at once as its limit allows"
    assert max(free.values()) > flow_app.LIMIT, f"without the limit, the same load overlaps more: {free}"
    assert len({pid for *_, pid in rows}) >= 2, "the work was shared between worker processes"
