"""Many worker processes on one PostgreSQL database: exactly-once under load, crashes, races, faults."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

import tarry
from tests.postgres import workers_app
from tests.postgres.conftest import ROOT, effects

RUNS = 2000
pytestmark = pytest.mark.timeout(600)  # processes and thousands of runs: minutes, not the suite's default


async def client(url: str) -> tarry.Tarry:
    app = tarry.Tarry("workers", database_url=url)
    app._registry = workers_app.app._registry  # the same functions, as a web app imports them
    await app.start(worker=False)
    return app


async def until(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():  # type: ignore[misc]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]


def test_four_workers_resume_two_thousand_runs_exactly_once(pg_url: str, workers: Callable[..., object]) -> None:
    for _ in range(4):
        workers()

    async def scenario() -> None:
        app = await client(pg_url)
        try:
            for first in range(0, RUNS, 500):
                await app.send([tarry.Event("work/start", {"n": n}) for n in range(first, first + 500)])
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'waiting'", RUNS), 120,
                        "every run to wait")  # fmt: skip
            senders = [tarry.Tarry("sender", database_url=pg_url) for _ in range(4)]
            for sender in senders:
                sender._registry = app._registry
                await sender.start(worker=False)
            order = list(range(RUNS))
            random.shuffle(order)

            async def send_all(sender: tarry.Tarry, part: list[int]) -> None:
                for n in part:
                    await sender.send(tarry.Event("work/go", {"n": n}))

            await asyncio.gather(*(send_all(s, order[i::4]) for i, s in enumerate(senders)))
            for sender in senders:
                await sender.close()
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'completed'", RUNS), 180,
                        "every run to complete")  # fmt: skip
        finally:
            await app.close()

    asyncio.run(scenario())
    done = effects(pg_url)
    per_run = Counter(run_id for run_id, step, _ in done if step == "effect")
    assert len(per_run) == RUNS and set(per_run.values()) == {1}, "every run's step ran exactly once"
    assert count(pg_url, "SELECT count(*) FROM consumed") == RUNS, "no wait resumed twice"
    with psycopg.connect(pg_url) as conn:
        mismatched = conn.execute(
            "SELECT count(*) FROM runs r JOIN events e ON e.id = r.event_id "
            "WHERE r.status = 'completed' AND r.output::text <> (e.data::json ->> 'n')"
        ).fetchone()[0]  # type: ignore[index]
    assert mismatched == 0, "each run was resumed by its own event"
    with psycopg.connect(pg_url) as conn:
        pids = {pid for (pid,) in conn.execute("SELECT DISTINCT pid FROM effects")}
    assert len(pids) >= 2, "the work was shared between worker processes"


async def _is(url: str, sql: str, expected: int) -> bool:
    return count(url, sql) == expected


def test_delayed_events_and_timers_fire_on_exactly_one_worker(pg_url: str, workers: Callable[..., object]) -> None:
    for _ in range(3):
        workers()

    async def scenario() -> None:
        app = await client(pg_url)
        try:
            due = int(time.time() * 1000) + 1000
            await app.send([tarry.Event("timer/start", {"n": n}, ts=due) for n in range(40)])
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'completed'", 40), 60,
                        "every delayed run to wake and complete")  # fmt: skip
            await asyncio.sleep(1)  # any second delivery or firing would show by now
        finally:
            await app.close()

    asyncio.run(scenario())
    assert count(pg_url, "SELECT count(*) FROM runs") == 40, "each delayed event delivered once"
    per_run = Counter(run_id for run_id, step, _ in effects(pg_url) if step == "woke")
    assert len(per_run) == 40 and set(per_run.values()) == {1}, "each sleep's timer fired once"


def test_a_worker_killed_mid_step_is_taken_over(pg_url: str, workers: Callable[..., subprocess.Popen[str]]) -> None:
    doomed = workers(CRASH_BLOCK="1")

    async def start() -> str:
        app = await client(pg_url)
        try:
            [event_id] = await app.send(tarry.Event("crash/start"))
            await until(lambda: _is(pg_url, "SELECT count(*) FROM effects WHERE step = 'two'", 1), 30,
                        "the run to reach step two")  # fmt: skip
            [run] = await app.runs_for_event(event_id)
            return run.id
        finally:
            await app.close()

    run_id = asyncio.run(start())
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    workers(TARRY_WORKER_LEASE="1s")  # takes the run over once the dead worker's lease expires

    async def finish() -> tarry.Run:
        app = await client(pg_url)
        try:
            return await app.wait_for_run(run_id, timeout=60)
        finally:
            await app.close()

    done = asyncio.run(finish())
    assert done.status == "completed" and done.output == "first+second"
    steps = Counter(step for _, step, _ in effects(pg_url))
    assert steps == {"one": 1, "two": 2}, "step one was recorded before the kill; step two was interrupted"


def test_event_and_wait_registration_race_from_two_processes(pg_url: str, workers: Callable[..., object]) -> None:
    workers()
    trials = 150
    # The other process sends run n's event just after run n's trigger is stored: while the
    # worker is starting that run and registering its wait.
    sender_script = (
        "import asyncio, random, sys, psycopg, tarry\n"
        "async def main():\n"
        "    app = tarry.Tarry('sender', database_url=sys.argv[1])\n"
        "    await app.start(worker=False)\n"
        "    with psycopg.connect(sys.argv[1], autocommit=True) as conn:\n"
        "        for n in range(int(sys.argv[2])):\n"
        "            while conn.execute(\"SELECT count(*) FROM events WHERE name = 'work/start'\").fetchone()[0] <= n:\n"
        "                await asyncio.sleep(0.0005)\n"
        "            await asyncio.sleep(random.random() / 500)\n"
        "            await app.send(tarry.Event('work/go', {'n': n}))\n"
        "    await app.close()\n"
        "asyncio.run(main())\n"
    )

    async def scenario() -> None:
        app = await client(pg_url)
        try:
            sender = subprocess.Popen([sys.executable, "-c", sender_script, pg_url, str(trials)], cwd=ROOT,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
            for n in range(trials):  # each run starts while its event is on its way from the other process
                await app.send(tarry.Event("work/start", {"n": n}))
                await asyncio.sleep(random.random() / 200)
            await asyncio.get_running_loop().run_in_executor(None, sender.wait)
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'completed'", trials), 60,
                        "every run to complete")  # fmt: skip
        finally:
            await app.close()

    asyncio.run(scenario())
    per_run = Counter(run_id for run_id, step, _ in effects(pg_url) if step == "effect")
    assert len(per_run) == trials and set(per_run.values()) == {1}
    assert count(pg_url, "SELECT count(*) FROM consumed") == trials


def test_a_connection_dropped_mid_run_is_survived(pg_url: str, workers: Callable[..., object]) -> None:
    workers()

    async def scenario() -> tarry.Run:
        app = await client(pg_url)
        try:
            [event_id] = await app.send(tarry.Event("drop/start"))
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs", 1), 10, "the run")
            [run] = await app.runs_for_event(event_id)
            await until(lambda: _finished(app, run.id), 60, "the run to finish")
            return await app.wait_for_run(run.id, timeout=5)
        finally:
            await app.close()

    done = asyncio.run(scenario())
    assert done.status == "completed" and done.output == "survived"
    assert Counter(step for _, step, _ in effects(pg_url))["before"] == 1


async def _finished(app: tarry.Tarry, run_id: str) -> bool:
    try:
        run = await app.get_run(run_id)
    except tarry.StoreError:
        return False  # our own connections were cut too
    return run is not None and run.status.finished


def test_an_unreachable_database_is_one_clear_error() -> None:
    app = tarry.Tarry("x", database_url="postgresql://root@127.0.0.1:1/nowhere")
    with pytest.raises(tarry.StoreError, match=r"cannot connect to PostgreSQL at 127\.0\.0\.1:1/nowhere"):
        asyncio.run(app.start())
    result = subprocess.run(
        [sys.executable, "-c", "from tarry._cli import main; main()", "migrate", "--database-url",
         "postgresql://root@127.0.0.1:1/nowhere"], capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1 and "cannot connect to PostgreSQL" in result.stderr
    named, *errors = result.stderr.strip().splitlines()  # the line naming the database, then the error
    assert (
        named
        == "database: postgresql://root@127.0.0.1:1/nowhere (from --database-url, not the default sqlite:///.tarry/tarry.db)"
    )
    assert len(errors) == 1 and "Traceback" not in result.stderr


def test_two_processes_migrating_at_once_do_not_collide(postgres_template: tuple[str, str]) -> None:
    admin, _ = postgres_template
    database = f"tarry_migrate_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')
    url = admin.rpartition("/")[0] + "/" + database
    try:
        command = [sys.executable, "-c", "from tarry._cli import main; main()", "migrate", "--database-url", url]
        processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(3)]  # fmt: skip
        results = [p.communicate(timeout=60) for p in processes]
        assert all(p.returncode == 0 for p in processes), results
        with psycopg.connect(url) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM tarry_migrations ORDER BY version")]
        assert versions == sorted(set(versions)) and versions[0] == 1
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _cluster() -> list[str] | None:
    versions = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").exists() else []
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].parent.name, "main"] if versions else None


@pytest.mark.serial
@pytest.mark.skipif(
    _cluster() is None or os.geteuid() != 0, reason="needs a local Debian cluster and root to restart it"
)
def test_workers_recover_when_postgresql_restarts(pg_url: str, workers: Callable[..., object]) -> None:
    workers()
    cluster = _cluster()
    assert cluster is not None

    async def before() -> None:
        app = await client(pg_url)
        try:
            await app.send([tarry.Event("work/start", {"n": n}) for n in range(20)])
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'waiting'", 20), 30, "waits")
        finally:
            await app.close()

    asyncio.run(before())
    subprocess.run([*cluster, "restart"], check=True, capture_output=True)

    async def after() -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                app = await client(pg_url)
                break
            except tarry.StoreError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        try:
            await app.send([tarry.Event("work/go", {"n": n}) for n in range(20)])
            await until(lambda: _is(pg_url, "SELECT count(*) FROM runs WHERE status = 'completed'", 20), 60,
                        "the runs to complete after the restart")  # fmt: skip
        finally:
            await app.close()

    asyncio.run(after())
    assert len(effects(pg_url)) == 20
