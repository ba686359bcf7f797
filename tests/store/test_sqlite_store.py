"""The SQLite store on its own: schema, migrations, named queries, open errors."""

import os
import sqlite3
from pathlib import Path

import pytest

import tarry
from tarry._clock import SystemClock
from tarry._engine.engine import Engine
from tarry._function import Registry
from tarry._store.queries import load_migrations, load_queries
from tarry._store.sqlite import SQLiteStore


def test_queries_load_and_are_all_parameterised() -> None:
    queries = load_queries("sqlite")
    assert {"claim_runs", "insert_event", "upsert_step", "due_timers", "next_due"} <= set(queries)
    for name, sql in queries.items():
        assert "{" not in sql and "%" not in sql, f"{name} looks formatted, not parameterised"


def test_migrations_are_numbered_in_order() -> None:
    versions = [v for v, _, _ in load_migrations("sqlite")]
    assert versions == sorted(set(versions)) and versions[0] == 1


async def test_migrations_apply_to_an_empty_database_and_are_recorded_once(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "m.db")
    for _ in range(2):  # opening again applies nothing new
        store = SQLiteStore(url)
        await store.open(Engine(store, Registry(), SystemClock(), b"key", None))
        assert await store.applied_migrations() == [v for v, _, _ in load_migrations("sqlite")]
        await store.close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"events", "runs", "steps", "timers", "workers", "tarry_migrations"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_relative_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with tarry.Tarry("t", database_url="sqlite:///data/app.db"):
        pass
    assert (tmp_path / "data" / "app.db").exists()


async def test_the_default_database_is_a_file_under_dot_tarry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TARRY_DATABASE_URL", raising=False)
    async with tarry.Tarry("t"):
        pass
    assert (tmp_path / ".tarry" / "tarry.db").exists()


async def test_the_database_url_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARRY_DATABASE_URL", "sqlite:///" + str(tmp_path / "env.db"))
    async with tarry.Tarry("t"):
        pass
    assert (tmp_path / "env.db").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
async def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    app = tarry.Tarry("t", database_url="sqlite:///" + str(locked / "x.db"))
    with pytest.raises(tarry.StoreError, match="cannot write"):
        await app.start()


async def test_a_path_that_cannot_be_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    app = tarry.Tarry("t", database_url="sqlite:///" + str(tmp_path / "file" / "x.db"))
    with pytest.raises(tarry.StoreError, match="cannot create the folder"):
        await app.start()
    assert (tmp_path / "file").read_text() == "not a folder"


async def test_a_folder_nobody_may_create_is_a_clear_error() -> None:
    app = tarry.Tarry("t", database_url="sqlite:////proc/tarry-no-such-folder/x.db")
    with pytest.raises(tarry.StoreError, match="cannot create the folder '/proc/tarry-no-such-folder'"):
        await app.start()


async def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.db").write_bytes(b"this is not sqlite" * 100)
    app = tarry.Tarry("t", database_url="sqlite:///" + str(tmp_path / "x.db"))
    with pytest.raises(tarry.StoreError, match=r"x\.db"):
        await app.start()


async def test_synchronous_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore("sqlite:///" + str(tmp_path / "x.db") + "?synchronous=sometimes")


async def test_writes_after_close_fail_at_once_every_time(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "closed.db")
    store = SQLiteStore(url)
    await store.open(Engine(store, Registry(), SystemClock(), b"key", None))
    await store.heartbeat("w", 1)
    await store.close()
    for _ in range(2):
        with pytest.raises(tarry.StoreError, match="closed"):
            await store.heartbeat("w", 2)


async def test_writes_that_share_a_commit_keep_their_own_outcomes(tmp_path: Path) -> None:
    """Writes queued together commit together; one that fails changes nothing, of its own or the others'."""
    import asyncio

    store = SQLiteStore("sqlite:///" + str(tmp_path / "group.db"))
    await store.open(Engine(store, Registry(), SystemClock(), b"key", None))

    def insert(c: sqlite3.Connection, owner: str, fail: bool) -> str:
        c.execute("INSERT INTO workers (id, started_at, heartbeat_at) VALUES (?, 1, 1)", (owner,))
        if fail:
            raise ValueError(f"{owner} refused")
        return owner

    try:
        writes = [store._write(insert, f"w{i}", i == 3) for i in range(8)]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        assert [str(o) for o in outcomes] == [f"w{i}" if i != 3 else "w3 refused" for i in range(8)]
        stored = await store._read(lambda c: sorted(r[0] for r in c.execute("SELECT id FROM workers")))
        assert stored == [f"w{i}" for i in range(8) if i != 3]
    finally:
        await store.close()
