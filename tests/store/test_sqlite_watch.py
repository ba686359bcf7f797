"""The SQLite store's watch: another connection's commit wakes this process at once; its own do not."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tarry._store import watch as watch_module
from tarry._store.sqlite import SQLiteStore
from tests.conftest import LIMIT


class Wakes:
    """Hooks that only count wake-ups (the writes here call no other hook)."""

    def __init__(self) -> None:
        self.count = 0
        self.woken = asyncio.Event()

    def wake(self) -> None:
        self.count += 1
        self.woken.set()


async def _woken(wakes: Wakes, within: float) -> bool:
    try:
        await asyncio.wait_for(wakes.woken.wait(), within)
    except TimeoutError:
        return False
    return True


@pytest.fixture(params=["inotify", "stat"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(watch_module, "USE_INOTIFY", request.param == "inotify")
    return str(request.param)


async def test_a_commit_of_another_connection_wakes_the_watching_store(tmp_path: Path, kind: str) -> None:
    url = "sqlite:///" + str(tmp_path / "w.db")
    wakes = Wakes()
    store = SQLiteStore(url)
    await store.open(wakes)  # type: ignore[arg-type]
    try:
        store.watch()
        store.watch()  # once is enough
        assert store._watch is not None
        if kind == "inotify":
            assert store._watch.kind == "inotify"  # Linux: this suite runs where inotify is
        assert await _woken(wakes, LIMIT)  # the first look: the version to compare with
        await asyncio.sleep(0.1)
        wakes.woken.clear()
        for _ in range(3):  # our own commits: no wake-up
            await store._write(lambda c: c.execute("INSERT INTO workers (id, started_at, heartbeat_at) "
                                                   "VALUES ('own', 1, 1) ON CONFLICT (id) DO UPDATE "
                                                   "SET heartbeat_at = heartbeat_at + 1"))  # fmt: skip
        assert not await _woken(wakes, 0.2)
        for n in range(3):  # another connection's (another process's, as SQLite sees it): each wakes us
            wakes.woken.clear()
            began = time.monotonic()
            with sqlite3.connect(tmp_path / "w.db") as other:
                other.execute("INSERT INTO workers (id, started_at, heartbeat_at) VALUES (?, 1, 1)", (f"o{n}",))
            assert await _woken(wakes, LIMIT), "the other connection's commit did not wake the store"
            assert time.monotonic() - began < 0.25, "woken, but no faster than a poll"
    finally:
        await store.close()
    assert store._watch is None
    assert not [t for t in threading.enumerate() if t.name == "tarry-sqlite-watch"], "close stops the watch"


async def test_a_memory_database_and_a_closed_store_have_no_watch(tmp_path: Path) -> None:
    store = SQLiteStore("sqlite:///:memory:")
    await store.open(Wakes())  # type: ignore[arg-type]
    store.watch()
    assert store._watch is None
    await store.close()
    store = SQLiteStore("sqlite:///" + str(tmp_path / "c.db"))
    await store.open(Wakes())  # type: ignore[arg-type]
    await store.close()
    store.watch()
    assert store._watch is None


def test_inotify_events_are_read_by_name() -> None:
    event = watch_module._EVENT.pack(1, 0x2, 0, 16) + b"w.db-wal".ljust(16, b"\0")
    other = watch_module._EVENT.pack(1, 0x2, 0, 16) + b"w.db".ljust(16, b"\0")
    assert watch_module._names(other + event, b"w.db-wal")
    assert not watch_module._names(other, b"w.db-wal")
    assert watch_module._names(watch_module._EVENT.pack(-1, 0x4000, 0, 0), b"w.db-wal")  # overflowed
