"""The scripts: ./scripts/dev trusts only its own server, ./scripts/test runs both stores or says why not."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from tests.cli.commands import ROOT, free_port


class Squatter(http.server.BaseHTTPRequestHandler):
    """Another program on the port: healthy to any GET, and it records what is POSTed to it."""

    posted: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def do_POST(self) -> None:
        self.posted.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def squatter() -> Iterator[tuple[int, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Squatter)
    Squatter.posted = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], Squatter.posted
    server.shutdown()
    server.server_close()


def dev_env(tmp_path: Path, port: int) -> dict[str, str]:
    return {**os.environ, "TARRY_PORT": str(port), "TARRY_VENV": sys.prefix,
            "TARRY_DATABASE_URL": "sqlite:///" + str(tmp_path / "dev.db")}  # fmt: skip


def test_dev_fails_and_sends_nothing_when_another_server_holds_the_port(
    tmp_path: Path, squatter: tuple[int, list[str]]
) -> None:
    port, posted = squatter
    result = subprocess.run([str(ROOT / "scripts" / "dev")], env=dev_env(tmp_path, port), capture_output=True,
                            text=True, timeout=50)  # fmt: skip
    assert posted == [] and "Dashboard" not in result.stdout, result.stdout + result.stderr
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "nothing was sent" in result.stderr


def test_dev_starts_its_server_and_two_waiting_runs(tmp_path: Path) -> None:
    port = free_port()
    script = subprocess.Popen([str(ROOT / "scripts" / "dev")], env=dev_env(tmp_path, port), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        assert script.stdout is not None
        seen = ""
        while "Dashboard:" not in seen:
            line = script.stdout.readline()
            assert line, f"scripts/dev ended early: {seen}"
            seen += line
        deadline = time.monotonic() + 20
        while len(runs := httpx.get(f"http://127.0.0.1:{port}/api/v1/runs").json()["runs"]) < 2:
            assert time.monotonic() < deadline, runs
            time.sleep(0.05)
        assert sorted(r["function_id"] for r in runs) == ["onboarding-drip", "refund-approval"]
    finally:
        os.killpg(script.pid, signal.SIGTERM)
        script.wait(15)


ONE_TEST_ON_BOTH_STORES = "tests/scenarios/test_runs.py::test_list_runs_newest_first_with_filters"


def pytest_of(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_postgresql_half_fails_unless_it_is_turned_off() -> None:
    result = pytest_of(ONE_TEST_ON_BOTH_STORES)
    assert result.returncode != 0 and "1 passed, 1 error" in result.stdout, result.stdout
    assert "needs TARRY_TEST_POSTGRES_URL" in result.stdout and "TARRY_TEST_POSTGRES=off" in result.stdout
    result = pytest_of(ONE_TEST_ON_BOTH_STORES, TARRY_TEST_POSTGRES="off")
    assert result.returncode == 0 and "1 passed, 1 skipped" in result.stdout, result.stdout
    assert "the PostgreSQL half was NOT run (TARRY_TEST_POSTGRES=off)" in result.stdout


def test_scripts_test_fails_loudly_when_postgresql_is_unreachable() -> None:
    url = "postgresql://root@127.0.0.1:1/postgres"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    result = subprocess.run([str(ROOT / "scripts" / "test"), ONE_TEST_ON_BOTH_STORES], capture_output=True,
                            text=True, timeout=120, env={**env, "TARRY_TEST_POSTGRES_URL": url})  # fmt: skip
    assert result.returncode != 0 and f"cannot reach PostgreSQL at {url}" in result.stderr, result.stderr
    assert "TARRY_TEST_POSTGRES=off" in result.stderr and "passed" not in result.stdout


def test_the_shells_tarry_settings_do_not_reach_the_tests() -> None:
    result = pytest_of("tests/cli/test_environment.py", TARRY_DATABASE_URL="sqlite:///elsewhere.db",
                       TARRY_SIGNING_KEY="from-the-shell-0123", TARRY_TEST_POSTGRES="off")  # fmt: skip
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout
