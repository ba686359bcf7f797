"""Helpers for the CLI tests: run ``tarry`` as a process, seed a database, wait for a server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import tarry

TARRY = [sys.executable, "-c", "from tarry._cli import main; main()"]
CONSOLE_SCRIPT = [str(Path(sys.executable).parent / "tarry")]  # as users run it (python -c puts the cwd first)
ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "examples" / "onboarding.py") + ":app"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        console: bool = False) -> subprocess.CompletedProcess[str]:  # fmt: skip
    command = CONSOLE_SCRIPT if console else TARRY
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=60
    )


STARTED: list[subprocess.Popen[str]] = []  # stopped after each test (tests/cli/conftest.py)


def start(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
          console: bool = False) -> subprocess.Popen[str]:  # fmt: skip
    """Start a long-running command (a server, a worker); it is stopped after the test in any case."""
    process = subprocess.Popen(
        [*(CONSOLE_SCRIPT if console else TARRY), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})}, cwd=cwd,
    )  # fmt: skip
    STARTED.append(process)
    return process


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Stop a server or worker started with ``start``; its (stdout, stderr)."""
    if process.stdout is not None and process.stdout.closed:
        return "", ""  # stopped already
    if process.poll() is None:
        process.terminate()
    try:
        return process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the line naming the database, which a command that uses one prints first."""
    lines = result.stderr.strip().splitlines()
    if lines and lines[0].startswith("database: "):
        lines = lines[1:]
    return lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(process: subprocess.Popen[str], port: int, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            out, err = stop(process)
            raise AssertionError(f"the server did not start:\n{out}\n{err}")
        time.sleep(0.05)


def seed_waiting_run(url: str) -> str:
    """A database at ``url`` holding one waiting run; its id."""

    async def seed() -> str:
        app = tarry.Tarry("cli", database_url=url)

        @app.function(trigger="cli/start")
        async def waiter(ctx: tarry.Context) -> None:
            await ctx.step.wait_for_event("w", event="cli/never", timeout="1d")

        async with app:
            [event_id] = await app.send(tarry.Event("cli/start"))
            await app.idle()
            [run] = await app.runs_for_event(event_id)
            return run.id

    return asyncio.run(seed())
