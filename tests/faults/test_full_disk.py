"""SQLite out of disk under load: clear errors, nothing accepted lost, work goes on when space returns.

One app process per way of running out (a file-size limit; a small filesystem filled up) sends in a
loop through the shortage (``disk_app``); the tests read its report and the database it leaves.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tarry
from tests.faults import disk_app
from tests.faults.conftest import effects
from tests.postgres.conftest import ROOT

pytestmark = pytest.mark.timeout(90)


@dataclass(frozen=True, kw_only=True)
class Shortage:
    database: Path
    folder: Path  # the effects
    report: dict[str, Any]
    log: str  # what the app process logged


@pytest.fixture(scope="module", params=["rlimit", "ballast"])
def shortage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shortage]:
    """The app process's run through a shortage: a file-size limit, or a 16 MB tmpfs filled up."""
    folder = tmp_path_factory.mktemp(f"disk-{request.param}")
    disk = folder / "disk"
    disk.mkdir()
    mounted = False
    if request.param == "ballast":
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True)
        if mount.returncode != 0:
            pytest.skip(f"cannot mount a small filesystem here: {mount.stderr.decode().strip()}")
        mounted = True
    try:
        database = disk / "tarry.db"
        child = subprocess.run(
            [sys.executable, "-m", "tests.faults.disk_app", "sqlite:///" + str(database), str(folder), request.param],
            cwd=ROOT, timeout=80, capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "FAULT_DIR": str(folder), "TARRY_WORKER_LEASE": "600ms"},
        )  # fmt: skip
        assert child.returncode == 0, child.stderr
        yield Shortage(database=database, folder=folder, report=json.loads(child.stdout.splitlines()[-1]),
                       log=child.stderr)  # fmt: skip
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def test_sends_fail_with_a_clear_error_while_the_disk_is_full(shortage: Shortage) -> None:
    failures: list[str] = shortage.report["failures"]
    assert len(failures) >= disk_app.FAILURES
    reasons = {f.replace(str(shortage.database), "DB") for f in failures}
    assert all(r.startswith("tarry._errors.StoreError: SQLite error on DB: ") for r in reasons), reasons
    assert all("full" in r for r in reasons), f"the message says the disk is full: {reasons}"
    assert all(shortage.report["after"]), "sends succeed once space is back"


def test_nothing_accepted_is_lost_and_the_database_is_intact(
    shortage: Shortage, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted: list[str] = shortage.report["accepted"]
    with sqlite3.connect(shortage.database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in conn.execute("SELECT id FROM events WHERE name = 'disk/item'")}
        started = {row[0] for row in conn.execute("SELECT event_id FROM runs")}
    assert stored == set(accepted), "every accepted event is stored, and no refused one"
    assert started == stored, "each accepted event started its run"

    monkeypatch.setenv("FAULT_DIR", str(shortage.folder))

    async def restart() -> list[tarry.Run]:  # every run finishes after a restart, whatever happened before
        app = tarry.Tarry("disk", database_url="sqlite:///" + str(shortage.database))
        disk_app.define(app)
        async with app:
            return [await app.wait_for_run(r.id, timeout=20) for r in await app.list_runs(limit=10_000)]

    runs = asyncio.run(restart())
    assert len(runs) == len(accepted) and {r.status for r in runs} == {"completed"}
    done = effects(shortage.folder)
    assert all(done[r.id, step] >= 1 for r in runs for step in ("store", "after"))


def test_the_worker_carries_on_when_space_returns(shortage: Shortage) -> None:
    runs: dict[str, str] = shortage.report["runs"]
    assert len(runs) == len(shortage.report["accepted"]), f"runs left unfinished:\n{shortage.log}"
    assert set(runs.values()) == {"completed"}, shortage.log
