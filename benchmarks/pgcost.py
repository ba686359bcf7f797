"""What a workload costs the PostgreSQL server: transactions, statements, round trips, server CPU, WAL bytes.

``Cost(url)`` is taken around a phase of a workload in the process that runs
it. Statements and round trips are counted in this process, on psycopg's
cursors and commands (``BEGIN``, ``COMMIT``, savepoints); a pipeline's
statements count one round trip per sync. Transactions are the database's
count as the client sees it (each ``BEGIN``, each statement
outside one), WAL bytes the server's LSN before and after,
and the server's CPU is the user and system time (``/proc/<pid>/stat``) of
the database's backends and the server's own processes (the WAL writer, the
checkpointer, ...), so it is what a larger machine would have to give the
database (``server_cpu_all``: of every PostgreSQL process of the machine,
autovacuum and other databases' backends too). Counting adds a few µs per statement; figures of speed are
taken in runs without it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statements = 0
        self.round_trips = 0
        self.transactions = 0
        self.by_text: Counter[str] = Counter()

    def add(self, text: str, statements: int, trips: int, transactions: int = 0) -> None:
        with self.lock:
            self.transactions += transactions
            self.statements += statements
            self.round_trips += trips
            self.by_text[" ".join(text.split())[:90]] += statements


_counts: _Counts | None = None
_quiet = threading.local()  # on in ``until``'s thread: its statements are not the workload's


def until(url: str, status: str, n: int, timeout: float = 3600) -> None:
    """Block until ``n`` runs have ``status``, asking every 50 ms on a connection of its own, uncounted."""
    import time

    import psycopg

    _quiet.on = True
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM runs WHERE status = %s", (status,), prepare=False).fetchone()
            if row is not None and row[0] >= n:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} runs not {status} within {timeout} s")
            time.sleep(0.05)


@contextlib.contextmanager
def counting() -> Iterator[None]:
    """Count the statements and round trips psycopg sends while inside (patches psycopg's classes)."""
    global _counts
    import psycopg

    cursor_execute = psycopg.Cursor.execute
    exec_command = psycopg.Connection._exec_command
    sync = psycopg.Pipeline.sync

    def execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        if _counts is not None and not getattr(_quiet, "on", False):
            piped = self._conn._pipeline is not None
            alone = self._conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # autocommit
            _counts.add(str(query) if isinstance(query, str) else repr(query), 1, 0 if piped else 1, int(alone))
        return cursor_execute(self, query, params, **kw)

    def command(self: Any, command: Any, *args: Any, **kw: Any) -> Any:
        if _counts is not None and not getattr(_quiet, "on", False):
            text = command.decode() if isinstance(command, bytes) else str(command)
            _counts.add(text, 0, 0 if self._pipeline is not None else 1, int(text.startswith("BEGIN")))
        return exec_command(self, command, *args, **kw)

    def piped_sync(self: Any) -> Any:
        if _counts is not None:
            _counts.add("(pipeline sync)", 0, 1)
        return sync(self)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    psycopg.Connection._exec_command = command  # type: ignore[method-assign]
    psycopg.Pipeline.sync = piped_sync  # type: ignore[method-assign]
    _counts = _Counts()
    try:
        yield
    finally:
        psycopg.Cursor.execute = cursor_execute  # type: ignore[method-assign]
        psycopg.Connection._exec_command = exec_command  # type: ignore[method-assign]
        psycopg.Pipeline.sync = sync  # type: ignore[method-assign]
        _counts = None


def _cpu_by_pid() -> dict[int, float]:
    """User and system CPU seconds of each process of the machine named ``postgres``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name != "postgres" and not name.startswith("postgres:"):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return found


class Cost:
    """The server's cost of what runs between ``start()`` and ``stop(n)``, per unit of ``n``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _wal(self) -> int:
        import psycopg

        _quiet.on = True
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
            # this database's client backends (the pool's connections), and the server's own processes
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() AND pid <> pg_backend_pid()) "
                "OR backend_type NOT IN ('client backend', 'autovacuum worker')"
            ).fetchall()
        assert row is not None
        self._pids.update(p[0] for p in pids)
        return int(row[0])

    def start(self) -> None:
        global _counts
        if _counts is not None:
            _counts = _Counts()
        _quiet.on = True
        self._pids: set[int] = set()
        self._lsn = self._wal()
        self._cpu = _cpu_by_pid()
        self._all = sum(self._cpu.values())

    def stop(self, n: int) -> dict[str, Any]:
        now = _cpu_by_pid()
        wal = self._wal() - self._lsn
        ours = sum(now.get(pid, 0.0) - self._cpu.get(pid, 0.0) for pid in self._pids)
        figures: dict[str, Any] = {
            "server_cpu_us_per_run": ours * 1e6 / n,  # this database's backends and the server's own processes
            "server_cpu_all_us_per_run": (sum(now.values()) - self._all) * 1e6 / n,  # every postgres process
            "wal_bytes_per_run": wal / n,
        }
        if _counts is not None:
            figures["transactions_per_run"] = _counts.transactions / n
            figures["statements_per_run"] = _counts.statements / n
            figures["round_trips_per_run"] = _counts.round_trips / n
            figures["top_statements"] = [(t, round(c / n, 2)) for t, c in _counts.by_text.most_common(30)]
        return figures
