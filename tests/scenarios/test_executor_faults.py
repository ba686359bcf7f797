"""The executor under faults: gathered steps and a park, values that cannot be stored,
a worker loop whose store calls fail."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import tarry
from tarry._engine import worker as worker_module
from tarry._store.sql import SQLStore
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run


async def _turns(n: int) -> None:
    """Let the event loop take ``n`` turns: a branch that reaches its step late."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_step_reached_late_beside_a_parked_wait_does_not_run_after_the_park(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    bodies: list[str] = []
    parked_at: list[int] = []

    async def slow() -> str:
        bodies.append("slow")
        await _turns(20)
        return "done"

    @app.function(trigger="late/start")
    async def late(ctx: tarry.Context) -> list[Any]:
        async def branch() -> str:
            await _turns(50)  # user code outside a step: the wait parks first
            result: str = await ctx.step.run("slow", slow)
            return result

        got, result = await asyncio.gather(ctx.step.wait_for_event("go", event="late/go", timeout="1h"), branch())
        await ctx.step.sleep("after", "1m")  # one more park and replay: a recorded step never runs again
        return [got is not None, result]

    async with app:
        run = await start_run(app, tarry.Event("late/start"))
        assert run.status == "waiting"
        await _turns(200)  # a body left running after the park would have run by now
        await app.idle(timeout=LIMIT)
        parked_at.append(len(bodies))
        await app.send(tarry.Event("late/go"))
        await app.idle(timeout=LIMIT)
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert parked_at == [0], "no step body of a parked run runs after its park"
    assert done.status == "completed", (done.status, done.error)
    assert done.output == [True, "done"]
    assert bodies == ["slow"], "the step ran once: after the resume, and never again once recorded"


async def test_a_run_backed_off_waits_for_a_step_body_still_running_in_a_thread(
    app: tarry.Tarry, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    slow_done = threading.Event()
    bodies: list[str] = []
    backed_off_after_the_body: list[bool] = []

    def slow() -> str:
        bodies.append("slow")
        release.wait(LIMIT)
        slow_done.set()
        return "slow"

    def fast() -> str:
        bodies.append("fast")
        return "fast"

    @app.function(trigger="thread/start")
    async def flow(ctx: tarry.Context) -> list[Any]:
        async def slow_branch() -> Any:
            try:
                return await ctx.step.run("slow", slow)
            except asyncio.CancelledError:
                release.set()  # the run let go of this branch: its thread may end now
                raise

        async def fast_branch() -> Any:
            await _turns(5)
            return await ctx.step.run("fast", fast)

        return list(await asyncio.gather(slow_branch(), fast_branch()))

    async with app:
        store = app.engine.store
        real_record, real_back_off = store.record_step, store.back_off
        failures = [tarry.StoreError("the connection was terminated")]

        async def record_step(*args: Any, **kwargs: Any) -> Any:
            if failures and args[2].id == "fast":
                raise failures.pop()
            return await real_record(*args, **kwargs)

        async def back_off(*args: Any, **kwargs: Any) -> Any:
            backed_off_after_the_body.append(slow_done.is_set())
            release.set()
            return await real_back_off(*args, **kwargs)

        monkeypatch.setattr(store, "record_step", record_step)
        monkeypatch.setattr(store, "back_off", back_off)
        run = await start_run(app, tarry.Event("thread/start"))
        assert run.status == "sleeping", (run.status, run.error)
        await clock.advance("1s")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert backed_off_after_the_body == [True], "a run handed back leaves no step body running"
    assert done.output == ["slow", "fast"]
    assert sorted(bodies) == ["fast", "fast", "slow", "slow"], "neither was recorded, so both ran again"


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


async def test_a_function_returning_a_value_too_deep_for_json_fails_once(app: tarry.Tarry, clock: VirtualClock) -> None:
    calls: list[int] = []

    @app.function(trigger="deep/return")
    async def deep_return(ctx: tarry.Context) -> Any:
        calls.append(1)
        return _deep(100_000)

    async with app:
        run = await start_run(app, tarry.Event("deep/return"))
        for _ in range(5):
            await clock.advance("1s")
        await app.idle(timeout=LIMIT)
        run = await app.get_run(run.id)
    assert run is not None and run.status == "failed", (run.status, run.error)
    assert run.error is not None and run.error["name"] == "ValueError"
    assert "'deep-return'" in run.error["message"] and "nested too deeply" in run.error["message"]
    assert calls == [1], "a value that cannot be stored is not retried"


async def test_a_step_returning_a_value_too_deep_for_json_fails_as_a_step(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    bodies: list[int] = []

    def build() -> Any:
        bodies.append(1)
        return _deep(100_000)

    @app.function(trigger="deep/step")
    async def deep_step(ctx: tarry.Context) -> Any:
        try:
            await ctx.step.run("build", build)
        except tarry.StepError as err:
            return [err.name, err.message]
        return "stored"

    async with app:
        run = await start_run(app, tarry.Event("deep/step"))
        for _ in range(5):
            await clock.advance("1s")
        run = await app.wait_for_run(run.id, timeout=LIMIT)
    assert run.status == "completed", (run.status, run.error)
    name, message = run.output
    assert name == "ValueError" and "'build'" in message and "nested too deeply" in message
    [step] = run.steps
    assert step.status == "failed" and step.attempts == 1
    assert bodies == [1], "the body ran once: its value cannot be stored, so it is not retried"


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


async def test_an_exception_whose_message_cannot_be_read_or_stored_fails_the_run_once(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    calls: list[str] = []

    @app.function(trigger="odd/unprintable")
    async def unprintable(ctx: tarry.Context) -> None:
        calls.append("unprintable")
        raise _Unprintable

    @app.function(trigger="odd/surrogate")
    async def surrogate(ctx: tarry.Context) -> None:
        calls.append("surrogate")
        raise ValueError("bad \udc80 text")

    async with app:
        first = await start_run(app, tarry.Event("odd/unprintable"))
        second = await start_run(app, tarry.Event("odd/surrogate"))
        for _ in range(5):
            await clock.advance("1s")
        await app.idle(timeout=LIMIT)
        first = await app.get_run(first.id)
        second = await app.get_run(second.id)
    assert first is not None and first.status == "failed" and first.error is not None
    assert first.error["name"] == "_Unprintable" and "could not be read" in first.error["message"]
    assert second is not None and second.status == "failed" and second.error is not None
    assert (second.error["name"], second.error["message"]) == ("ValueError", "bad \\udc80 text")
    assert sorted(calls) == ["surrogate", "unprintable"]


def _fail_first(monkeypatch: pytest.MonkeyPatch, owner: object, failures: dict[str, int],
                error: type[Exception] = tarry.StoreError) -> None:  # fmt: skip
    """``owner``'s store methods named in ``failures`` raise ``error`` that many times, then work."""
    for method, times in failures.items():
        real = getattr(owner, method)

        def flaky(real: Any, method: str) -> Any:
            async def call(*args: Any, **kwargs: Any) -> Any:
                if failures[method] > 0:
                    failures[method] -= 1
                    raise error(f"{method}: the connection was terminated")
                return await real(*args, **kwargs)

            return call

        monkeypatch.setattr(owner, method, flaky(real, method))
        assert times > 0


async def _until_spent(failures: dict[str, int]) -> None:
    """Wait (real time: a heartbeat is on the wall clock) until every injected failure happened."""
    for _ in range(int(LIMIT / 0.02)):
        if not any(failures.values()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the worker stopped calling the store: {failures} left")


async def test_the_worker_carries_on_when_its_heartbeat_and_recovery_fail(
    app: tarry.Tarry, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARRY_WORKER_LEASE", "150ms")  # a heartbeat every 50 ms
    monkeypatch.setattr(worker_module, "POLL_S", 0.02)

    @app.function(trigger="beat/nap")
    async def nap(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1m")
        return "woke"

    async with app:
        run = await start_run(app, tarry.Event("beat/nap"))
        assert run.status == "sleeping"
        failures = {"heartbeat": 3, "recover": 2}
        _fail_first(monkeypatch, app.engine.store, failures)
        await _until_spent(failures)
        await clock.advance("1m")  # only the worker's loop fires the timer
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        later = await start_run(app, tarry.Event("beat/nap"))
        await clock.advance("1m")
        assert (await app.wait_for_run(later.id, timeout=LIMIT)).output == "woke"
        worker = app.engine.worker
        assert worker is not None and not worker.ended.done()
    assert done.output == "woke"


async def test_the_worker_carries_on_after_a_few_faults_that_are_not_the_stores(
    app: tarry.Tarry, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARRY_WORKER_LEASE", "150ms")  # a heartbeat every 50 ms
    monkeypatch.setattr(worker_module, "POLL_S", 0.02)

    @app.function(trigger="odd/nap")
    async def nap(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1m")
        return "woke"

    async with app:
        run = await start_run(app, tarry.Event("odd/nap"))
        failures = {"tick": 4, "heartbeat": 3}  # fewer in a row than the loop gives up after
        _fail_first(monkeypatch, app.engine.store, failures, KeyError)
        await _until_spent(failures)
        await clock.advance("1m")
        assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == "woke"
        worker = app.engine.worker
        assert worker is not None and not worker.ended.done()


async def test_a_worker_starts_when_its_first_heartbeat_fails(
    app: tarry.Tarry, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.function(trigger="start/nap")
    async def nap(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1m")
        return "woke"

    failures = {"heartbeat": 2, "recover": 1}
    _fail_first(monkeypatch, SQLStore, failures)
    async with app:
        assert not any(failures.values())
        run = await start_run(app, tarry.Event("start/nap"))
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "woke"


async def test_worker_died_says_what_ended_the_loop(app: tarry.Tarry, monkeypatch: pytest.MonkeyPatch) -> None:
    async with app:
        store = app.engine.store

        async def broken_tick(*args: Any, **kwargs: Any) -> Any:
            raise KeyError("a bug in the claim")

        monkeypatch.setattr(store, "tick", broken_tick)
        app.engine.wake()
        fault = await asyncio.wait_for(app.worker_died(), LIMIT)
    assert isinstance(fault, KeyError) and "a bug in the claim" in str(fault)
    async with app:  # closed and started again: a new worker, working
        waiting = asyncio.ensure_future(app.worker_died())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        waiting.cancel()


async def test_the_worker_carries_on_when_postgresql_kills_its_heartbeat_connection(
    app: tarry.Tarry, clock: VirtualClock, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL server's own failure")
    import psycopg

    monkeypatch.setenv("TARRY_WORKER_LEASE", "150ms")  # a heartbeat every 50 ms
    monkeypatch.setattr(worker_module, "POLL_S", 0.02)

    @app.function(trigger="pg/nap")
    async def nap(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1m")
        return "woke"

    async with app, await psycopg.AsyncConnection.connect(db_url, autocommit=True) as admin:
        run = await start_run(app, tarry.Event("pg/nap"))
        store = app.engine.store
        real_heartbeat = store.heartbeat
        kills = {"heartbeat": 3}

        async def heartbeat(*args: Any, **kwargs: Any) -> Any:
            if kills["heartbeat"] <= 0:
                return await real_heartbeat(*args, **kwargs)
            kills["heartbeat"] -= 1
            async with admin.transaction():  # hold the heartbeat's write, then kill its connection mid-query
                await admin.execute("LOCK TABLE workers IN ACCESS EXCLUSIVE MODE")
                beat = asyncio.ensure_future(real_heartbeat(*args, **kwargs))
                for _ in range(int(LIMIT / 0.01)):
                    cursor = await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
                    )
                    if await cursor.fetchall():
                        break
                    await asyncio.sleep(0.01)
            return await beat

        monkeypatch.setattr(store, "heartbeat", heartbeat)
        await _until_spent(kills)
        await clock.advance("1m")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
        worker = app.engine.worker
        assert worker is not None and not worker.ended.done()
    assert done.output == "woke"


async def test_a_send_event_payload_or_a_wait_option_too_deep_is_refused_at_the_step(app: tarry.Tarry) -> None:
    @app.function(trigger="deep/send")
    async def deep_send(ctx: tarry.Context) -> str:
        try:
            await ctx.step.send_event("out", tarry.Event("deep/out", {"tree": _deep(100_000)}))
        except tarry.InvalidEventError as err:
            return str(err)
        return "sent"

    @app.function(trigger="deep/wait")
    async def deep_wait(ctx: tarry.Context) -> str:
        try:
            await ctx.step.wait_for_event("w", event="x", timeout="1h", on_timeout=_deep(100_000))  # type: ignore[arg-type]  # wrong on purpose
        except ValueError as err:
            return str(err)
        return "waited"

    async with app:
        sent = await app.wait_for_run((await start_run(app, tarry.Event("deep/send"))).id, timeout=LIMIT)
        waited = await app.wait_for_run((await start_run(app, tarry.Event("deep/wait"))).id, timeout=LIMIT)
        assert await app.list_runs(status="queued") == []
    assert sent.status == "completed" and "data" in sent.output and "nested too deeply" in sent.output
    assert waited.status == "completed" and waited.output.startswith("invalid on_timeout [[[")
    assert [s.id for s in sent.steps] == [] and [s.id for s in waited.steps] == [], "nothing of it is stored"
