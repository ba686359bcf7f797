"""Shared fixtures: an app on a fresh SQLite file with a VirtualClock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock

LIMIT = 10  # real seconds one engine call may take in a test


def sqlite_url(folder: Path) -> str:
    return "sqlite:///" + str(folder.resolve() / "tarry.db")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
def make_app(db_url: str, clock: VirtualClock) -> Callable[..., tarry.Tarry]:
    def make(**options: Any) -> tarry.Tarry:
        options.setdefault("database_url", db_url)
        options.setdefault("clock", clock)
        return tarry.Tarry("test", **options)

    return make


@pytest.fixture
def app(make_app: Callable[..., tarry.Tarry]) -> tarry.Tarry:
    """An app not yet started: register functions, then ``async with app``."""
    return make_app()


@pytest.fixture
async def running(app: tarry.Tarry) -> AsyncIterator[tarry.Tarry]:
    """The same app, started with its worker (register functions before using it)."""
    async with app:
        yield app


async def start_run(app: tarry.Tarry, event: tarry.Event, function_id: str | None = None) -> tarry.Run:
    """Send ``event``, wait until idle, and return the one run it started (of ``function_id``)."""
    [event_id] = await app.send(event)
    await app.idle(timeout=LIMIT)
    runs = [r for r in await app.runs_for_event(event_id) if function_id is None or r.function_id == function_id]
    assert len(runs) == 1, runs
    return runs[0]
