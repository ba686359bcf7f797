"""Fixtures for the fault-injection tests: a database on either store shared by worker processes.

``fault_url`` is a SQLite file in the test's folder or a fresh PostgreSQL database (the ``pg_url``
of the PostgreSQL tests); ``workers`` starts `tarry worker` processes of ``faults_app`` on it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import tarry
from tests.conftest import sqlite_url
from tests.faults import faults_app
from tests.postgres.conftest import ROOT, pg_url, spawn_worker  # noqa: F401 - pg_url: a fixture, used by fault_url

APP = "tests/faults/faults_app.py:app"
Workers = Callable[..., subprocess.Popen[str]]
PRINTED: dict[int, list[str]] = {}  # what each worker printed, by pid (drained: a full pipe never blocks it)


@pytest.fixture(params=["sqlite", "postgresql"])
def fault_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that several processes share: a SQLite file in tmp_path, or a PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def workers(fault_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Start `tarry worker` processes on the test's database; any still alive are stopped afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(**env: str) -> subprocess.Popen[str]:
        process = spawn_worker(APP, fault_url, FAULT_DIR=str(tmp_path), **env)
        started.append(process)
        PRINTED[process.pid] = []
        threading.Thread(target=_drain, args=(process, PRINTED[process.pid]), daemon=True).start()
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for process in started:
        print(f"worker {process.pid} printed:\n" + "".join(PRINTED.pop(process.pid, [])))  # shown if it fails


def _drain(process: subprocess.Popen[str], into: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(line)


async def client(url: str) -> tarry.Tarry:
    """An app without a worker that routes with the worker's functions, as a web app importing them."""
    app = tarry.Tarry("faults", database_url=url)
    app._registry = faults_app.app._registry
    await app.start(worker=False)
    return app


async def until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


def effects(folder: Path) -> Counter[tuple[str, str]]:
    """How many times each (run id, step) side effect happened, kill notes included."""
    path = folder / "effects.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter((run_id, step) for run_id, step, _ in (line.split() for line in lines))


def exited(process: subprocess.Popen[str], seconds: float) -> int:
    """Wait for ``process`` to end (it is killing itself) and return its exit code."""
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the worker never reached its kill point") from None
