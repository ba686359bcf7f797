"""Failures a person can debug, on both stores: tracebacks, every attempt's error, a step's wake time,
the 4 MiB limit on results, and ctx.logger's run and step ids."""

from __future__ import annotations

import asyncio
import logging
import re
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run

MAX_TRACEBACK = 16_384
MAX_RESULT = 4 * 1024 * 1024
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"


def innermost(message: str) -> None:
    raise ValueError(message)


def ping(depth: int) -> None:  # with pong: frames Python cannot fold as "previous line repeated"
    if depth == 0:
        innermost("bottom")
    pong(depth - 1)


def pong(depth: int) -> None:
    ping(depth)


def fields(error: dict[str, str] | None) -> tuple[str, str] | None:
    return None if error is None else (error["name"], error["message"])


def ms_after(start: datetime, moment: datetime | None) -> int | None:
    return None if moment is None else round((moment - start).total_seconds() * 1000)


# -- tracebacks ----------------------------------------------------------------------


async def test_a_run_that_raises_keeps_its_traceback_also_in_its_system_events(app: tarry.Tarry) -> None:
    seen: list[dict[str, Any]] = []

    @app.function(trigger="tb/outside")
    async def outside(ctx: tarry.Context) -> None:
        innermost("no such order")

    @app.function(trigger="tarry/function.*")
    async def audit(ctx: tarry.Context) -> None:
        seen.append({"name": ctx.event.name, **ctx.event.data})

    async with app:
        run = await start_run(app, tarry.Event("tb/outside"), "outside")
        await app.idle(timeout=LIMIT)
    assert run.status == "failed" and fields(run.error) == ("ValueError", "no such order")
    trace = run.error["traceback"]
    assert trace.startswith("Traceback (most recent call last):\n")
    assert ", in outside\n" in trace and ", in innermost\n" in trace
    assert trace.index(", in outside\n") < trace.index(", in innermost\n"), "innermost frame last, as Python prints"
    assert trace.endswith("ValueError: no such order\n")
    ended = {s["name"]: s["error"] for s in seen if s["run_id"] == run.id}
    assert set(ended) == {"tarry/function.failed", "tarry/function.finished"}
    assert ended["tarry/function.failed"] == ended["tarry/function.finished"] == run.error


async def test_a_step_errors_traceback_and_the_run_it_fails(app: tarry.Tarry) -> None:
    @app.function(trigger="tb/step", retries=0)
    async def charging(ctx: tarry.Context) -> None:
        await ctx.step.run("charge", innermost, "card declined")

    async with app:
        run = await start_run(app, tarry.Event("tb/step"))
    [step] = run.steps
    assert step.status == "failed" and fields(step.error) == ("ValueError", "card declined")
    assert ", in innermost\n" in step.error["traceback"]
    assert step.error["traceback"].endswith("ValueError: card declined\n")
    assert step.errors == [step.error]
    assert fields(run.error) == ("StepError", "step 'charge' failed: ValueError: card declined")
    cause, _, where = run.error["traceback"].partition(
        "\nThe above exception was the direct cause of the following exception:\n\n"
    )
    assert cause == step.error["traceback"].rstrip("\n") + "\n", "the step's own traceback comes first"
    assert ", in charging\n" in where and where.endswith("step 'charge' failed: ValueError: card declined\n")


async def test_a_step_error_raised_again_on_replay_keeps_the_steps_traceback(
    app: tarry.Tarry, clock: VirtualClock
) -> None:
    @app.function(trigger="tb/replay", retries=0)
    async def caught(ctx: tarry.Context) -> None:
        try:
            await ctx.step.run("charge", innermost, "declined")
        except tarry.StepError as exc:
            assert exc.traceback is not None and ", in innermost\n" in exc.traceback
        await ctx.step.sleep("nap", "1h")
        await ctx.step.run("charge-again", innermost, "declined again")  # after a replay of "charge"

    async with app:
        run = await start_run(app, tarry.Event("tb/replay"))
        assert run.status == "sleeping"
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.status == "failed" and fields(done.error) == (
        "StepError", "step 'charge-again' failed: ValueError: declined again")  # fmt: skip
    assert [s.status for s in done.steps] == ["failed", "completed", "failed"]


@pytest.mark.parametrize("where", ["step", "function"])
async def test_a_deep_recursion_is_cut_to_16_kib_keeping_the_innermost_frames(app: tarry.Tarry, where: str) -> None:
    @app.function(trigger="tb/deep", retries=0)
    async def deep(ctx: tarry.Context) -> None:
        if where == "step":
            try:
                await ctx.step.run("dive", ping, 300)
            except tarry.StepError:
                return
        ping(300)

    async with app:
        run = await start_run(app, tarry.Event("tb/deep"))
    error = run.steps[0].error if where == "step" else run.error
    assert error is not None
    trace = error["traceback"]
    assert len(trace.encode()) <= MAX_TRACEBACK
    assert trace.startswith("Traceback (most recent call last):\n")
    assert "frames left out ...]\n" in trace
    assert trace.endswith(", in innermost\n    raise ValueError(message)\nValueError: bottom\n")
    assert trace.count(", in ping\n") > 20, "as many innermost frames as fit are kept"


async def test_a_huge_message_is_cut_to_16_kib_in_the_message_and_the_traceback(app: tarry.Tarry) -> None:
    huge = "declined " + "x" * 1_000_000 + " end"

    @app.function(trigger="tb/huge", retries=0)
    async def loud(ctx: tarry.Context) -> None:
        await ctx.step.run("charge", innermost, huge)

    async with app:
        run = await start_run(app, tarry.Event("tb/huge"))
    [step] = run.steps
    for error in (step.error, run.error):
        assert error is not None
        assert len(error["message"].encode()) <= MAX_TRACEBACK and len(error["traceback"].encode()) <= MAX_TRACEBACK
        assert "bytes left out]" in error["message"] and "bytes left out]" in error["traceback"]
        assert ", in innermost\n" in error["traceback"]
    assert step.error["message"].startswith("declined xxx")
    assert step.error["traceback"].count("ValueError: declined xxx") == 1


async def test_an_error_the_engine_makes_has_no_traceback(app: tarry.Tarry) -> None:
    @app.function(trigger="tb/none", retries=3)
    async def unstorable(ctx: tarry.Context) -> Any:
        try:
            await ctx.step.run("make-set", lambda: {1, 2})
        except tarry.StepError as exc:
            assert exc.traceback is None, "the body returned: nothing raised in it"
        await ctx.step.wait_for_event("never", event="tb/never", timeout="1h")

    async with app:
        run = await start_run(app, tarry.Event("tb/none"))
        assert run.status == "waiting"
        assert await app.cancel_run(run.id)
        cancelled = await app.wait_for_run(run.id, timeout=LIMIT)
    assert set(cancelled.error) == {"name", "message"}, "a cancel is no error of the code"
    assert set(cancelled.steps[0].error) == {"name", "message"} and cancelled.steps[0].error["name"] == "TypeError"


async def test_a_return_value_that_cannot_be_stored_has_no_traceback(app: tarry.Tarry) -> None:
    @app.function(trigger="tb/return")
    async def returns_a_set(ctx: tarry.Context) -> Any:
        return {1, 2}

    async with app:
        run = await start_run(app, tarry.Event("tb/return"))
    assert run.status == "failed" and set(run.error) == {"name", "message"}


# -- every attempt's error, wake_at ------------------------------------------------


async def test_every_failed_attempt_is_kept_after_the_step_succeeds(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="att/flaky", retries=4)
    async def flaky(ctx: tarry.Context) -> str:
        def call_upstream() -> str:
            if ctx.attempt < 3:
                raise ConnectionError(f"upstream down ({ctx.attempt})")
            return "ok"

        return await ctx.step.run("call", call_upstream)

    async with app:
        run = await start_run(app, tarry.Event("att/flaky"))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    [step] = done.steps
    assert done.output == "ok" and step.status == "completed" and step.attempts == 4
    assert step.error is None and step.wake_at is None
    assert [fields(e) for e in step.errors] == [("ConnectionError", f"upstream down ({n})") for n in range(3)]
    assert all(", in call_upstream\n" in e["traceback"] for e in step.errors)


async def test_every_attempt_is_kept_when_retries_run_out(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="att/down", retries=2)
    def down(ctx: tarry.Context) -> None:  # plain def: its step body runs in a thread too
        def call_upstream() -> None:
            raise ConnectionError(f"down {ctx.attempt}")

        ctx.step.run_sync("call", call_upstream)

    async with app:
        run = await start_run(app, tarry.Event("att/down"))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    [step] = done.steps
    assert step.status == "failed" and step.attempts == 3
    assert [e["message"] for e in step.errors] == ["down 0", "down 1", "down 2"]
    assert step.error == step.errors[-1]
    assert fields(done.error) == ("StepError", "step 'call' failed: ConnectionError: down 2")


async def test_a_wait_that_times_out_with_fail_has_its_one_error(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="att/wait")
    async def waiting(ctx: tarry.Context) -> None:
        await ctx.step.wait_for_event("approval", event="att/approved", timeout="1h", on_timeout="fail")

    async with app:
        run = await start_run(app, tarry.Event("att/wait"))
        await clock.advance("1h")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    [step] = done.steps
    assert step.status == "failed" and step.errors == [step.error] and step.error["name"] == "WaitTimeoutError"
    assert done.error["name"] == "WaitTimeoutError" and ", in waiting\n" in done.error["traceback"]


async def test_wake_at_of_a_sleep_and_of_a_retry_backoff(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="wake/go", retries=1)
    async def napping(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "2h")

        def call() -> str:
            if ctx.attempt == 0:
                raise tarry.RetryAfterError("busy", "30s")
            return "done"

        return await ctx.step.run("call", call)

    async with app:
        start = clock.now()
        run = await start_run(app, tarry.Event("wake/go"))
        [nap] = (await app.get_run(run.id)).steps
        assert nap.status == "sleeping" and ms_after(start, nap.wake_at) == 2 * 3600_000
        await clock.advance("2h")
        after = await app.get_run(run.id)
        nap, call = after.steps
        assert after.status == "sleeping" and call.status == "retrying"
        assert ms_after(start, call.wake_at) == 2 * 3600_000 + 30_000
        assert nap.status == "completed" and ms_after(start, nap.wake_at) == 2 * 3600_000, "when the sleep ended"
        await clock.advance("30s")
        done = await app.wait_for_run(run.id, timeout=LIMIT)
    assert done.output == "done" and done.steps[1].wake_at is None and done.steps[1].errors[0]["message"] == "busy"


async def test_a_sleep_already_due_has_its_wake_time(app: tarry.Tarry, clock: VirtualClock) -> None:
    @app.function(trigger="wake/past")
    async def past(ctx: tarry.Context) -> None:
        await ctx.step.sleep_until("then", "2000-01-01T00:00:00+00:00")

    async with app:
        run = await start_run(app, tarry.Event("wake/past"))
    [step] = run.steps
    assert step.status == "completed" and step.wake_at is not None and step.wake_at.year == 2000


# -- the 4 MiB limit ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "size"), [("x" * MAX_RESULT, MAX_RESULT + 2), ("é" * (MAX_RESULT // 2), MAX_RESULT + 2)],
                         ids=["ascii", "two-byte characters"])  # fmt: skip
async def test_a_step_result_over_4_mib_fails_the_step_without_retries(app: tarry.Tarry, text: str, size: int) -> None:
    calls = []

    @app.function(trigger="big/step", retries=4)
    async def big(ctx: tarry.Context) -> dict[str, str]:
        try:
            await ctx.step.run("fetch-report", lambda: calls.append(1) or text)
        except tarry.StepError as exc:
            return {"name": exc.name, "message": exc.message}
        return {}

    async with app:
        run = await start_run(app, tarry.Event("big/step"))
    [step] = run.steps
    assert calls == [1] and step.status == "failed" and step.attempts == 1
    assert run.output == {
        "name": "ValueError",
        "message": f"step 'fetch-report' returned {size:,} bytes of JSON, over the limit of 4,194,304 bytes (4 MiB)",
    }


async def test_a_step_result_of_exactly_4_mib_is_kept(app: tarry.Tarry) -> None:
    @app.function(trigger="big/fits")
    async def fits(ctx: tarry.Context) -> int:
        report = await ctx.step.run("fetch-report", lambda: "é" * (MAX_RESULT // 2 - 1))  # + 2 quotes
        return len(report)

    async with app:
        run = await start_run(app, tarry.Event("big/fits"))
    assert run.status == "completed" and run.output == MAX_RESULT // 2 - 1


async def test_a_return_value_over_4_mib_fails_the_run_and_one_just_under_completes(app: tarry.Tarry) -> None:
    @app.function(trigger="big/return")
    async def returning(ctx: tarry.Context) -> str:
        return "x" * (MAX_RESULT - 2 + ctx.event.data["over"])

    async with app:
        over = await start_run(app, tarry.Event("big/return", {"over": 1}))
        fits = await start_run(app, tarry.Event("big/return", {"over": 0}))
    assert over.status == "failed" and over.error == {
        "name": "ValueError",
        "message": "function 'returning' returned 4,194,305 bytes of JSON, over the limit of 4,194,304 bytes (4 MiB)",
    }
    assert fits.status == "completed" and len(fits.output) == MAX_RESULT - 2


@pytest.mark.parametrize("early", [False, True], ids=["resumed-waiting", "resumed-before-the-wait"])
async def test_a_resume_whose_data_takes_the_wait_over_4_mib_fails_the_step(
    app: tarry.Tarry, clock: VirtualClock, early: bool
) -> None:
    # wait_for_event returns one event, at most 512 KiB: only a resume's data can pass the limit
    handles: dict[str, tarry.ResumeHandle] = {}

    @app.function(trigger="big/resume")
    async def review(ctx: tarry.Context) -> Any:
        handle = await ctx.step.resume_url("link", payload={"order": 7})
        handles[ctx.run_id] = handle
        if early:
            await ctx.step.sleep("pause", "1m")
        try:
            result = await ctx.step.wait_for_resume("review", handle)
        except tarry.StepError as exc:
            return {"name": exc.name, "message": exc.message}
        return len(result["event"]["blob"])

    fitting = MAX_RESULT - len('{"order":7,"event":{"blob":""}}')
    async with app:
        over = await start_run(app, tarry.Event("big/resume"))
        fits = await start_run(app, tarry.Event("big/resume"))
        assert await app.resume(handles[over.id].token, {"blob": "x" * (fitting + 1)})
        assert await app.resume(handles[fits.id].token, {"blob": "x" * fitting})
        await app.idle(timeout=LIMIT)
        await clock.advance("1m")
        over, fits = [await app.wait_for_run(r.id, timeout=LIMIT) for r in (over, fits)]
    assert over.output == {
        "name": "ValueError",
        "message": "step 'review' was resumed with 4,194,305 bytes of JSON, over the limit of 4,194,304 bytes (4 MiB)",
    }
    review_step = over.steps[-1]
    assert review_step.status == "failed" and review_step.errors == [review_step.error]
    assert fits.output == fitting


# -- ctx.logger --------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, function_id: str) -> list[tuple[str, str, str, str | None]]:
        return [(r.getMessage(), r.run_id, r.function_id, r.step_id) for r in self.records  # type: ignore[attr-defined]
                if r.name == f"tarry.function.{function_id}"]  # fmt: skip


@pytest.fixture
def logged() -> Iterator[Records]:
    handler = Records()
    tarry_logger = logging.getLogger("tarry")
    level = tarry_logger.level
    tarry_logger.addHandler(handler)
    tarry_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        tarry_logger.removeHandler(handler)
        tarry_logger.setLevel(level)


async def test_logger_records_carry_the_run_and_step_ids_and_stay_quiet_on_replay(
    app: tarry.Tarry, clock: VirtualClock, logged: Records
) -> None:
    @app.function(trigger="log/async")
    async def chatty(ctx: tarry.Context) -> None:
        ctx.logger.info("outside")

        async def body() -> int:
            ctx.logger.info("in an async body")
            return 1

        def threaded() -> int:
            ctx.logger.info("in a thread")
            return 2

        await ctx.step.run("work", body)
        await ctx.step.run("work", threaded)
        await ctx.step.sleep("nap", "1h")
        ctx.logger.warning("after the nap")

    async with app:
        run = await start_run(app, tarry.Event("log/async"))
        await clock.advance("1h")
        await app.wait_for_run(run.id, timeout=LIMIT)
    assert logged.of("chatty") == [
        ("outside", run.id, "chatty", None),
        ("in an async body", run.id, "chatty", "work"),
        ("in a thread", run.id, "chatty", "work:1"),
        ("after the nap", run.id, "chatty", None),
    ], "replayed lines are not logged again"


async def test_logger_records_of_a_plain_def_function(app: tarry.Tarry, logged: Records) -> None:
    @app.function(trigger="log/sync")
    def plain(ctx: tarry.Context) -> None:
        ctx.logger.info("outside")
        ctx.step.run_sync("work", lambda: ctx.logger.info("inside") or 1)
        ctx.logger.info("after")

    async with app:
        run = await start_run(app, tarry.Event("log/sync"))
    assert run.status == "completed"
    assert logged.of("plain") == [
        ("outside", run.id, "plain", None),
        ("inside", run.id, "plain", "work"),
        ("after", run.id, "plain", None),
    ]


async def test_logger_records_of_gathered_steps_each_carry_their_own_step(app: tarry.Tarry, logged: Records) -> None:
    @app.function(trigger="log/gather")
    async def fan(ctx: tarry.Context) -> list[str]:
        async def body(name: str) -> str:
            for n in range(3):
                ctx.logger.info(f"{name} {n}")
                await asyncio.sleep(0)  # the branches interleave
            return name

        def threaded(name: str) -> str:
            ctx.logger.info(f"{name} 0")
            return name

        return list(await asyncio.gather(ctx.step.run("a", body, "a"), ctx.step.run("b", body, "b"),
                                         ctx.step.run("c", threaded, "c")))  # fmt: skip

    async with app:
        run = await start_run(app, tarry.Event("log/gather"))
    assert run.output == ["a", "b", "c"]
    lines = logged.of("fan")
    assert sorted(lines) == sorted([(f"{s} {n}", run.id, "fan", s) for s in "ab" for n in range(3)]
                                   + [("c 0", run.id, "fan", "c")])  # fmt: skip
    assert [line[0] for line in lines[:2]] != ["a 0", "a 1"], "they ran interleaved"


# -- the guide -----------------------------------------------------------------------


async def test_the_guides_debugging_sample_runs(
    app: tarry.Tarry, clock: VirtualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    section = re.search(r"^### Debugging a failed run\n(.*?)(?=^##)", GUIDE.read_text(), re.S | re.M)
    assert section, "docs/guide.md has no subsection 'Debugging a failed run'"
    [code] = re.findall(r"^```python\n(.*?)^```", section.group(1), re.S | re.M)

    @app.function(trigger="guide/charge", retries=1)
    async def charge(ctx: tarry.Context) -> None:
        await ctx.step.run("charge", innermost, "card declined")

    async with app:
        run = await start_run(app, tarry.Event("guide/charge"))
        await clock.advance("1h")
        await app.wait_for_run(run.id, timeout=LIMIT)
        namespace: dict[str, Any] = {"app": app, "run_id": run.id}
        exec(compile("async def sample():\n" + textwrap.indent(code, "    "), str(GUIDE), "exec"), namespace)
        await namespace["sample"]()
    printed = capsys.readouterr().out
    assert "StepError step 'charge' failed: ValueError: card declined" in printed
    assert "charge 1 ValueError card declined" in printed and "charge 2 ValueError card declined" in printed
    assert ", in innermost\n" in printed
