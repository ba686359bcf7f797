"""Helpers shared by the workloads: backends with fresh databases, percentiles, memory, the machine."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tarry


def fresh_url(folder: Path, name: str) -> str:
    return "sqlite:///" + str(folder / f"{name}.db")


def temp_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="tarry-bench-"))


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "mean": statistics.fmean(ordered)}


def machine(postgres_url: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "tarry": tarry.__version__,
        "sqlite": sqlite3.sqlite_version,
    }
    if postgres_url:
        import psycopg

        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            found["postgresql"] = row[0] if row else "?"
    return found


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rss_mib() -> float:
    """This process's resident memory, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Backend:
    """Where a workload's fresh databases live: a temporary folder of SQLite files, or a PostgreSQL server."""

    name: str

    def fresh(self, label: str) -> str:
        """The URL of a new, empty database for one workload."""
        raise NotImplementedError

    def size(self, url: str) -> int:
        """Bytes the database takes on disk."""
        raise NotImplementedError

    def clean(self) -> None:
        """Drop every database made here."""


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self) -> None:
        self.folder = temp_folder()

    def fresh(self, label: str) -> str:
        return "sqlite:///" + str(self.folder / f"{label}-{os.getpid()}-{time.monotonic_ns()}.db")

    def size(self, url: str) -> int:
        path = Path(url.removeprefix("sqlite:///"))
        if path.exists():  # fold the write-ahead log in first: the file then holds everything
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))

    def clean(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = temp_folder()


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.made: list[str] = []

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def fresh(self, label: str) -> str:
        name = f"tarry_bench_{label}_{os.getpid()}"
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self.admin_url.rpartition("/")[0] + "/" + name

    def size(self, url: str) -> int:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        return int(row[0])

    def clean(self) -> None:
        for name in self.made:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made = []
