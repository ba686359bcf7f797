"""The engine benchmark's park, resume and latency workloads, done by DBOS Transact on the same backend.

``benchmarks/engine.py`` measures Tarry; this module runs the same three workloads with the
``dbos`` package so the two can be read side by side on SQLite or PostgreSQL. DBOS is an
optional dependency: it is imported only inside the child process this module starts, so the
other benchmarks run without it installed.

The workflow (``bench_waiter``, a synchronous ``@DBOS.workflow()``) notes in an in-process counter
that it has reached ``DBOS.recv(topic="go", timeout_seconds=86400)``, waits there for its
message, then runs one ``@DBOS.step()`` named ``done`` that records ``time.perf_counter()`` for
its index, and returns. Each workflow has its own id, ``bench-<n>``, so a message is addressed to
it directly: DBOS's counterpart of Tarry's ``wait_for_event(match="data.n")``.

park
    N workflows are started from one client thread with ``DBOS.start_workflow`` in a loop (Tarry
    sends its start events in batches of 100). This is DBOS's direct fast path: the call writes
    the workflow's status row and hands the function to DBOS's executor thread pool, where it
    runs at once. A queue would add a dequeue poll between the write and the run, and DBOS has no
    bulk start. The clock runs from the first start until every workflow is durably parked:
    first the in-process counter shows that all N reached ``recv``, then the system database is
    polled every 20 ms (as Tarry's benchmark polls its run counts) until all N ``recv`` calls have
    checkpointed their timeout, the last write ``recv`` makes before it blocks. The rate at which
    workflows merely reached ``recv`` is printed on stderr.
resume
    With the N workflows waiting, one ``DBOS.send(workflow_id, message, topic="go")`` each, from
    one thread (``--resume-batch K`` sends instead with ``DBOS.send_bulk``, K messages per
    transaction, like Tarry's batches of 100). The clock runs from the first send until every
    workflow has returned (its handle's result is in).
latency
    On a fresh database, 200 workflows wait; messages are sent one at a time. A sample is the
    time from just before ``DBOS.send`` to when that workflow's ``done`` step noted its time,
    waited for with a ``threading.Event``. p50/p90/p99 are nearest-rank on the sorted samples.

Process RSS (VmRSS) is read before any workflow starts and with N workflows waiting.

A synchronous DBOS workflow occupies one thread of DBOS's executor pool for as long as it
runs, waiting included, so N waiting workflows are N threads. How a send reaches its waiter
depends on the backend: on PostgreSQL a trigger on DBOS's notifications table does
``pg_notify`` and a listener thread wakes the waiter; on SQLite a polling thread queries once
per waiting ``recv`` every ``notification_listener_polling_interval_sec`` (1 s unless
configured), which bounds SQLite's latency from below. On both, each waiting ``recv`` also
re-checks the database on its own every 60 s, a fallback against lost wake-ups, so N waiting
workflows add about N/60 queries a second to whatever else the process does.

Each backend runs in a fresh Python process, since DBOS keeps process-global state::

    python -m benchmarks.peer_dbos --url sqlite:////tmp/x/dbos.db --runs 10000
    python -m benchmarks.peer_dbos --url postgresql://root@127.0.0.1:5432/postgres --runs 10000

The process prints one JSON object on the last line of stdout; ``measure()`` starts it and
returns that object. On SQLite the URL names the park/resume database file, which must not
exist yet; latency uses ``<stem>-latency<suffix>`` beside it, and both are removed at the end
(``sqlite://`` with no path uses a temporary folder). On PostgreSQL the URL's database is used
only to create two fresh databases, ``tarry_bench_dbos_<pid>_park`` and ``..._latency``, on the
same server, dropped at the end. DBOS is configured with only an application name and the
system database URL.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from dbos import WorkflowHandle

REPO = Path(__file__).resolve().parent.parent
KEYS = (
    "park_per_s",
    "resume_per_s",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "rss_idle_mib",
    "rss_waiting_mib",
    "runs",
    "backend",
    "dbos_version",
)
APP_NAME = "tarry_bench_dbos"
WAIT_S = 3600.0  # the longest any one phase may take inside the child


def measure(url: str, runs: int, latency_runs: int = 200, timeout_s: float = 1800) -> dict[str, Any]:
    """Run the three workloads on DBOS in a fresh Python process and return its figures."""
    command = [sys.executable, "-m", "benchmarks.peer_dbos", "--url", url, "--runs", str(runs)]
    command += ["--latency-runs", str(latency_runs)]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"DBOS benchmark timed out after {timeout_s} s:\n{_tail(e.stderr)}") from None
    if done.returncode != 0:
        raise RuntimeError(f"DBOS benchmark failed (exit {done.returncode}):\n{_tail(done.stderr)}")
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise RuntimeError(
            f"DBOS benchmark printed no JSON result:\n{_tail(done.stdout)}\n{_tail(done.stderr)}"
        ) from None
    if not isinstance(result, dict) or set(result) != set(KEYS):
        raise RuntimeError(f"DBOS benchmark printed an unexpected result: {lines[-1]}")
    return result


def _tail(text: str | bytes | None, lines: int = 40) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").strip().splitlines()[-lines:])


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {f"p{round(q * 100)}": ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.9, 0.99)}


@dataclass
class _Progress:
    """What the workflows tell the benchmark, in process: how many reached recv, when each finished."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    reached: int = 0
    target: int = 0
    all_reached: threading.Event = field(default_factory=threading.Event)
    done: dict[int, float] = field(default_factory=dict)
    probes: dict[int, threading.Event] = field(default_factory=dict)

    def expect(self, n: int) -> None:
        with self.lock:
            self.reached, self.target = 0, n
            self.all_reached.clear()
            self.done.clear()
            self.probes.clear()

    def reach(self) -> None:
        with self.lock:
            self.reached += 1
            if self.reached >= self.target:
                self.all_reached.set()

    def finish(self, n: int) -> None:
        self.done[n] = time.perf_counter()
        probe = self.probes.pop(n, None)
        if probe is not None:
            probe.set()


PROGRESS = _Progress()


def _register() -> Callable[[int], int]:
    """Declare the workflow and its step to DBOS (once per process, before the first launch)."""
    from dbos import DBOS

    # without the bench extra installed, mypy sees dbos as untyped: hence the conditional ignores
    @DBOS.step(name="done")  # type: ignore[untyped-decorator,unused-ignore]
    def done(n: int) -> None:
        PROGRESS.finish(n)

    @DBOS.workflow(name="bench_waiter")  # type: ignore[untyped-decorator,unused-ignore]
    def waiter(n: int) -> int:
        PROGRESS.reach()
        DBOS.recv(topic="go", timeout_seconds=86400)
        done(n)
        return n

    return waiter  # type: ignore[no-any-return,unused-ignore]


def _workflow_id(n: int) -> str:
    return f"bench-{n}"


@dataclass
class _Store:
    """One fresh system database: the URL DBOS is given, and a way to count parked recv calls."""

    url: str
    count_parked: Callable[[], int]


@contextmanager
def _sqlite_store(path: Path) -> Iterator[_Store]:
    if path.exists():
        raise FileExistsError(f"{path} exists; the benchmark needs a fresh database file")
    path.parent.mkdir(parents=True, exist_ok=True)
    sql = "SELECT count(*) FROM operation_outputs WHERE function_name = 'DBOS.sleep'"

    def count_parked() -> int:
        with sqlite3.connect(path, timeout=60) as conn:
            row = conn.execute(sql).fetchone()
        conn.close()
        return int(row[0])

    try:
        yield _Store("sqlite:///" + str(path), count_parked)
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)


@contextmanager
def _postgres_store(admin_url: str, name: str) -> Iterator[_Store]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(admin_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    query = "SELECT count(*) FROM dbos.operation_outputs WHERE function_name = 'DBOS.sleep'"

    def count_parked() -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(query).fetchone()
        return 0 if row is None else int(row[0])

    try:
        yield _Store(url, count_parked)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def _dbos_on(store: _Store, poll_s: float | None) -> Iterator[None]:
    """DBOS launched on a system database, destroyed on the way out."""
    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {"name": APP_NAME, "system_database_url": store.url}
    if poll_s is not None:
        config["notification_listener_polling_interval_sec"] = poll_s
    DBOS(config=config)
    try:
        DBOS.launch()
        yield
    finally:
        DBOS.destroy()


def _start(waiter: Callable[[int], int], n: int) -> list[WorkflowHandle[int]]:
    from dbos import DBOS, SetWorkflowID

    handles = []
    for i in range(n):
        with SetWorkflowID(_workflow_id(i)):
            handles.append(DBOS.start_workflow(waiter, i))
    return handles


def _until_parked(store: _Store, n: int, began: float) -> float:
    """Wait for all n workflows to reach recv (in process), then for all n recv timeouts to be written."""
    if not PROGRESS.all_reached.wait(WAIT_S):
        raise TimeoutError(f"{PROGRESS.reached} of {n} workflows reached recv within {WAIT_S} s")
    reached = time.perf_counter() - began
    deadline = time.monotonic() + WAIT_S
    while store.count_parked() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} recv calls not parked within {WAIT_S} s")
        time.sleep(0.02)
    return reached


def _await_all(handles: list[WorkflowHandle[int]]) -> None:
    for handle in handles:
        handle.get_result()


def _send_all(n: int, batch: int) -> None:
    from dbos import DBOS, SendMessage

    if batch <= 1:
        for i in range(n):
            DBOS.send(_workflow_id(i), i, topic="go")
        return
    for first in range(0, n, batch):
        DBOS.send_bulk([SendMessage(_workflow_id(i), i, topic="go") for i in range(first, min(n, first + batch))])


def park_and_resume(
    waiter: Callable[[int], int], store: _Store, n: int, batch: int, poll_s: float | None
) -> dict[str, float]:
    with _dbos_on(store, poll_s):
        gc.collect()
        idle = _rss_mib()
        PROGRESS.expect(n)
        began = time.perf_counter()
        handles = _start(waiter, n)
        started = time.perf_counter() - began
        reached = _until_parked(store, n, began)
        park = n / (time.perf_counter() - began)
        gc.collect()
        waiting = _rss_mib()
        print(f"park: {n} started in {started:.2f} s, all reached recv at {reached:.2f} s "
              f"({n / reached:.1f}/s), all parked at {n / park:.2f} s", file=sys.stderr, flush=True)  # fmt: skip
        began = time.perf_counter()
        _send_all(n, batch)
        sent = time.perf_counter() - began
        _await_all(handles)
        took = time.perf_counter() - began
        if len(PROGRESS.done) != n:
            raise RuntimeError(f"{len(PROGRESS.done)} of {n} workflows ran their done step")
        print(f"resume: {n} sent in {sent:.2f} s, all completed at {took:.2f} s", file=sys.stderr, flush=True)
    return {"park_per_s": park, "resume_per_s": n / took, "rss_idle_mib": idle, "rss_waiting_mib": waiting}


def latency(waiter: Callable[[int], int], store: _Store, n: int, poll_s: float | None) -> dict[str, float]:
    from dbos import DBOS

    with _dbos_on(store, poll_s):
        PROGRESS.expect(n)
        handles = _start(waiter, n)
        _until_parked(store, n, time.perf_counter())
        samples = []
        for i in range(n):
            probe = PROGRESS.probes[i] = threading.Event()
            sent = time.perf_counter()
            DBOS.send(_workflow_id(i), i, topic="go")
            if not probe.wait(WAIT_S):
                raise TimeoutError(f"workflow {i} not resumed within {WAIT_S} s")
            samples.append((PROGRESS.done[i] - sent) * 1000)
        _await_all(handles)
    p = _percentiles(samples)
    print(
        f"latency: {n} samples, mean {sum(samples) / n:.1f} ms, max {max(samples):.1f} ms", file=sys.stderr, flush=True
    )
    return {"latency_p50_ms": p["p50"], "latency_p90_ms": p["p90"], "latency_p99_ms": p["p99"]}


@contextmanager
def _stores(url: str) -> Iterator[tuple[str, _Store, _Store]]:
    """The backend's name and two fresh system databases on it: park/resume, then latency."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        rest = url.removeprefix("sqlite://")[1:]  # SQLAlchemy's form: sqlite:///relative or sqlite:////absolute
        folder = None
        if rest:
            path = Path(rest).resolve()
        else:
            folder = Path(tempfile.mkdtemp(prefix="tarry-bench-dbos-"))
            path = folder / "dbos.db"
        try:
            with (
                _sqlite_store(path) as park,
                _sqlite_store(path.with_name(f"{path.stem}-latency{path.suffix}")) as late,
            ):
                yield "sqlite", park, late
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    elif scheme in ("postgresql", "postgres"):
        base = f"tarry_bench_dbos_{os.getpid()}"
        with _postgres_store(url, base + "_park") as park, _postgres_store(url, base + "_latency") as late:
            yield "postgresql", park, late
    else:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///... or postgresql://...")


def run(url: str, runs: int, latency_runs: int, batch: int = 1, poll_s: float | None = None) -> dict[str, Any]:
    waiter = _register()
    with _stores(url) as (backend, park_store, latency_store):
        result: dict[str, Any] = park_and_resume(waiter, park_store, runs, batch, poll_s)
        result.update(latency(waiter, latency_store, latency_runs, poll_s))
    result = {k: round(v, 2) for k, v in result.items()}
    result.update(runs=runs, backend=backend, dbos_version=version("dbos"))
    return {k: result[k] for k in KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_dbos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--url", required=True, help="sqlite:///abs/path.db, sqlite://, or postgresql://.../postgres")
    parser.add_argument("--runs", type=int, default=10_000, help="workflows parked then resumed")
    parser.add_argument("--latency-runs", type=int, default=200, help="workflows waiting while latency is sampled")
    parser.add_argument("--resume-batch", type=int, default=1, help="messages per DBOS.send_bulk (1: DBOS.send each)")
    parser.add_argument("--notification-poll-s", type=float, default=None,
                        help="DBOS notification_listener_polling_interval_sec (default: DBOS's own, 1 s)")  # fmt: skip
    args = parser.parse_args()
    result = run(args.url, args.runs, args.latency_runs, args.resume_batch, args.notification_poll_s)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
