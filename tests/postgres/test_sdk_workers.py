"""Inngest SDK functions on PostgreSQL with two worker processes: each step body runs once per attempt."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.cli.commands import TARRY, free_port
from tests.postgres.conftest import stop_workers
from tests.sdk.conftest import Server, halt, sdk_server, spawn

pytestmark = pytest.mark.timeout(180)
RUNS = 40


def test_two_worker_processes_call_each_sdk_step_once(pg_url: str) -> None:
    port, sdk_port = free_port(), free_port()
    sdk = sdk_server(sdk_port, INNGEST_DEV=f"http://127.0.0.1:{port}")
    dev = spawn([*TARRY, "dev", "--port", str(port), "--database-url", pg_url, "--sdk-url",
                 f"http://127.0.0.1:{sdk_port}/api/inngest"], {})  # fmt: skip
    server = Server(port, sdk_port)
    workers: list[subprocess.Popen[str]] = []
    try:
        server.until(lambda: "shop-steps" in _functions(server), "the SDK app to sync", 30)
        workers.append(_worker(pg_url))
        keys = [uuid.uuid4().hex for _ in range(RUNS)]
        events = [server.send("sdk/steps", {"id": key}) for key in keys]
        outputs = [server.run_of(event_id, seconds=60)["output"] for event_id in events]
        assert outputs == [3] * RUNS
        calls = server.calls()
        assert {calls[f"{key}/{name}"] for key in keys for name in ("one", "two", "three")} == {1}
    finally:
        stop_workers(workers)
        halt(dev)
        halt(sdk)


def _functions(server: Server) -> list[str]:
    try:
        return server.functions()
    except Exception:  # not listening yet
        return []


def _worker(pg_url: str) -> subprocess.Popen[str]:
    """A ``tarry worker`` with no app of its own: it runs the functions the SDK synced, read from the store."""
    process = spawn([*TARRY, "worker", "--database-url", pg_url], {})
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.startswith("database: "):
        line = process.stdout.readline()
    assert "Tarry worker for 'tarry'" in line and "shop-steps" in line, line
    return process
