"""Fixtures for tests that need PostgreSQL itself: a fresh database, worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = "tests/postgres/workers_app.py:app"


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    admin, template = request.getfixturevalue("postgres_template")
    database = f"tarry_workers_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    url = admin.rpartition("/")[0] + "/" + database
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE effects (run_id TEXT, step TEXT, n INTEGER, pid INTEGER)")
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def workers(pg_url: str) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `tarry worker` processes on the test's database; all are stopped afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(**env: str) -> subprocess.Popen[str]:
        process = spawn_worker(APP, pg_url, **env)
        started.append(process)
        return process

    yield start
    stop_workers(started)


def stop_workers(processes: list[subprocess.Popen[str]]) -> None:
    """SIGTERM each worker still running, then wait for it (killing one that does not stop in 10 s)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def spawn_worker(app: str, database_url: str, **env: str) -> subprocess.Popen[str]:
    """A `tarry worker` process of ``app`` on ``database_url``, returned once it printed its banner."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from tarry._cli import main; main()", "worker", app],
        cwd=ROOT, env={**os.environ, "TARRY_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.startswith("database: "):  # named on stderr first
        line = process.stdout.readline()
    assert "Tarry worker" in line, line + (process.stdout.read() if process.poll() is not None else "")
    return process


def effects(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute("SELECT run_id, step, n FROM effects ORDER BY run_id, step")]  # type: ignore[misc]
