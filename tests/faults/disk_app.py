"""A SQLite app that runs out of disk under load, then gets its space back: run by the full-disk tests.

``python -m tests.faults.disk_app DB_URL FOLDER MODE`` starts an app with a worker, sends events and
lets their runs complete, checkpoints the log (as SQLite does every 1000 pages), then takes the space
away — ``rlimit``: lowers its own RLIMIT_FSIZE to the log's size (SIGXFSZ ignored, so writes fail with
EFBIG); ``ballast``: fills the database's small filesystem with a file (ENOSPC) — sends on in a loop
for a dozen of the worker's heartbeats and until enough failed, gives the space back, sends again,
waits for every accepted event's run to complete, and prints one JSON report. Effects go to FOLDER.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import tarry
from tests.faults.faults_app import effect

BEFORE = 30  # events accepted (and their runs completed) before the shortage
FAILURES, AFTER = 20, 20  # sends failed while the disk is full (at least); sends after
FULL_S = 2.5  # at least this long without space; the worker heartbeats every 200 ms (a lease of 600 ms)
PAD = "x" * 2000  # each event grows the database by a few pages


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="disk/item", retries=10)
    async def ingest(ctx: tarry.Context) -> int:
        await ctx.step.run("store", effect, ctx.run_id, "store")
        await ctx.step.sleep("nap", "50ms")
        await ctx.step.run("after", effect, ctx.run_id, "after")
        n: int = ctx.event.data["n"]
        return n


def take_space(database: Path, mode: str) -> None:
    if mode == "rlimit":
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        wal = database.with_name(database.name + "-wal")  # no file may grow past the log's size
        resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size if wal.exists() else 0, hard))
        return
    fd = os.open(database.parent / "ballast", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:  # until the filesystem is full
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


def give_space_back(database: Path, mode: str) -> None:
    if mode == "rlimit":
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    else:
        (database.parent / "ballast").unlink()


def heartbeat_age(database: Path) -> int:
    """Milliseconds since the last heartbeat the database holds (reads work on a full disk): reported."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        [(last,)] = conn.execute("SELECT max(heartbeat_at) FROM workers").fetchall()
    return time.time_ns() // 1_000_000 - int(last)


async def main(url: str, folder: Path, mode: str) -> dict[str, Any]:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    database = Path(url.removeprefix("sqlite:///"))
    app = tarry.Tarry("disk", database_url=url)
    define(app)
    accepted: list[str] = []
    failures: list[str] = []
    sent = 0

    async def send() -> bool:
        nonlocal sent
        sent += 1
        try:
            accepted.extend(await app.send(tarry.Event("disk/item", {"n": sent, "pad": PAD})))
            return True
        except Exception as exc:  # the report says what was raised; the test judges it
            failures.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
            return False

    async with app:
        for _ in range(BEFORE):
            assert await send(), failures
        while len(await app.list_runs(status="completed", limit=10_000)) < BEFORE:
            await asyncio.sleep(0.05)  # the worker goes idle: only its turns and heartbeats write
        with contextlib.closing(sqlite3.connect(database)) as conn:  # as after any checkpoint: the log is
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # empty, so every write must grow a file
        take_space(database, mode)
        until, deadline = time.monotonic() + FULL_S, time.monotonic() + 15
        full_failures = 0  # full for a dozen heartbeats, so that they fail too
        while (full_failures < FAILURES or time.monotonic() < until) and time.monotonic() < deadline:
            full_failures += not await send()
            await asyncio.sleep(0.01)
        stale = heartbeat_age(database)
        accepted_while_full = len(accepted) - BEFORE
        give_space_back(database, mode)
        after = [await send() for _ in range(AFTER)]
        deadline = time.monotonic() + 5
        finished: dict[str, str] = {}
        while time.monotonic() < deadline:  # the worker carries on: every accepted event's run completes
            runs = {r.id: r.status for r in await app.list_runs(limit=10_000)}
            finished = {run_id: status for run_id, status in runs.items() if status in ("completed", "failed")}
            if len(finished) == len(accepted) and len(runs) == len(accepted):
                break
            await asyncio.sleep(0.1)
        return {"accepted": accepted, "accepted_while_full": accepted_while_full, "failures": failures,
                "after": after, "runs": finished, "stale": stale}  # fmt: skip


if __name__ == "__main__":
    report = asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
    print(json.dumps(report), flush=True)
