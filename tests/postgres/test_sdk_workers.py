"""Inngest SDK functions on PostgreSQL with two worker processes: each step body runs once per attempt."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.cli.commands import TARRY, free_port
from tests.postgres.conftest import stop_workers
from tests.sdk.conftest import Server, halt, sdk_server, spawn
from tests.sdk.test_inngest_serve import API_KEY, EVENT_KEY, KEY, cloud_sdk

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
        server.wait_synced("shop-steps", dev)
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


def _worker(pg_url: str) -> subprocess.Popen[str]:
    """A ``tarry worker`` with no app of its own: it runs the functions the SDK synced, read from the store."""
    process = spawn([*TARRY, "worker", "--database-url", pg_url], {})
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.startswith("database: "):
        line = process.stdout.readline()
    assert "Tarry worker for 'tarry'" in line and "shop-steps" in line, line
    return process


def test_a_worker_started_before_the_sync_runs_the_synced_functions(pg_url: str) -> None:
    port, sdk_port = free_port(), free_port()
    sdk = cloud_sdk(sdk_port, port, KEY, "shop")
    worker = spawn([*TARRY, "worker", "--database-url", pg_url], {"INNGEST_SIGNING_KEY": KEY})  # knows none yet
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if line.startswith("database: "):
        line = worker.stdout.readline()
    assert "(no functions)" in line, line
    serve = spawn([*TARRY, "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port), "--database-url",
                   pg_url, "--sdk-url", f"http://127.0.0.1:{sdk_port}/api/inngest"],
                  {"TARRY_EVENT_KEYS": EVENT_KEY, "TARRY_SIGNING_KEY": API_KEY, "INNGEST_SIGNING_KEY": KEY})  # fmt: skip
    server = Server(port, sdk_port, event_key=EVENT_KEY, api_key=API_KEY)
    try:
        server.wait_synced("shop-steps", serve)
        key = uuid.uuid4().hex
        run = server.run_of(server.send("sdk/steps", {"id": key}), seconds=30)  # at once: before its heartbeat
        assert (run["status"], run["output"]) == ("completed", 3)
    finally:
        stop_workers([worker])
        halt(serve)
        halt(sdk)
