"""Failures from the command line: ``tarry run`` shows every attempt's error, ``tarry dev`` a line per change."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
import time
from pathlib import Path

import httpx

import tarry
from tests.cli.commands import free_port, run, start, stop, wait_healthy

DEV_APP = """
import tarry

app = tarry.Tarry("lines")


@app.function(trigger="dev/flaky", retries=1)
async def flaky(ctx: tarry.Context) -> str:
    def call_upstream() -> str:
        if ctx.attempt == 0:
            raise tarry.RetryAfterError("upstream busy", "100ms")
        return "ok"

    return await ctx.step.run("call", call_upstream)


@app.function(trigger="dev/broken", retries=0)
async def broken(ctx: tarry.Context) -> None:
    await ctx.step.run("divide", lambda: 1 / 0)
"""


def test_run_shows_every_attempts_error_and_the_wake_time(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "cli.db")

    async def seed() -> str:
        app = tarry.Tarry("cli", database_url=url)

        @app.function(trigger="cli/flaky")
        async def flaky(ctx: tarry.Context) -> None:
            def call_upstream() -> None:
                raise tarry.RetryAfterError("upstream busy", "1h")

            await ctx.step.run("call", call_upstream)

        async with app:
            [event_id] = await app.send(tarry.Event("cli/flaky"))
            await app.idle()
            [seeded] = await app.runs_for_event(event_id)
            return seeded.id

    run_id = asyncio.run(seed())
    shown = run("run", run_id, env={"TARRY_DATABASE_URL": url})
    assert shown.returncode == 0, shown.stderr
    [step] = json.loads(shown.stdout)["steps"]
    assert step["status"] == "retrying" and step["wake_at"].endswith("Z")
    [error] = step["errors"]
    assert error["name"] == "RetryAfterError" and ", in call_upstream\n" in error["traceback"]


def test_dev_prints_a_line_per_run_start_retry_failure_and_end(tmp_path: Path) -> None:
    (tmp_path / "lines_app.py").write_text(textwrap.dedent(DEV_APP))
    port = free_port()
    url = "sqlite:///" + str(tmp_path / "dev.db")
    server = start("dev", f"{tmp_path / 'lines_app.py'}:app", "--port", str(port), "--database-url", url, cwd=tmp_path)
    wait_healthy(server, port)
    base = f"http://127.0.0.1:{port}"
    [flaky] = httpx.post(f"{base}/e/any", json={"name": "dev/flaky"}).json()["ids"]
    [broken] = httpx.post(f"{base}/e/any", json={"name": "dev/broken"}).json()["ids"]
    deadline = time.monotonic() + 20
    while True:
        runs = [httpx.get(f"{base}/api/v1/events/{e}/runs").json()["runs"] for e in (flaky, broken)]
        if all(r and r[0]["status"] in ("completed", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.05)
    flaky_run, broken_run = runs[0][0]["id"], runs[1][0]["id"]
    _, err = stop(server)
    lines = [line for line in err.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line)]
    time_ = r"\d\d:\d\d:\d\d\.\d{3}"
    took = r"\d+(ms|\.\ds)"
    expected = [
        rf"{time_} started   run={flaky_run} function=flaky event=dev/flaky",
        rf"{time_} retrying  run={flaky_run} function=flaky step=call attempt=1/2 took={took} retry_in=100ms "
        r"error=RetryAfterError: upstream busy",
        rf"{time_} completed run={flaky_run} function=flaky took={took}",
        rf"{time_} started   run={broken_run} function=broken event=dev/broken",
        rf"{time_} step-failed run={broken_run} function=broken step=divide attempts=1 took={took} "
        r"error=ZeroDivisionError: division by zero",
        rf"{time_} failed    run={broken_run} function=broken took={took} "
        r"error=StepError: step 'divide' failed: ZeroDivisionError: division by zero",
    ]
    for pattern in expected:
        assert sum(1 for line in lines if re.fullmatch(pattern, line)) == 1, f"{pattern}\nnot once in:\n{err}"
    assert len(lines) == len(expected), err
    for run_id in (flaky_run, broken_run):
        mine = [line for line in lines if f"run={run_id} " in line]
        assert mine[0].split()[1] == "started" and mine[-1].split()[1] in ("completed", "failed"), "in order"
