"""A real ``tarry dev`` and a real app of Inngest SDK functions (tests/sdk/sdk_app.py), each a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.commands import ROOT, TARRY, free_port

FINISHED = ("completed", "failed", "cancelled")


def spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def halt(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        out, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out or ""


def sdk_server(port: int, **env: str) -> subprocess.Popen[str]:
    """uvicorn serving tests/sdk/sdk_app.py on ``port``."""
    return spawn([sys.executable, "-m", "uvicorn", "tests.sdk.sdk_app:app", "--port", str(port),
                  "--log-level", "warning"], env)  # fmt: skip


class Server:
    """A Tarry server as its HTTP clients see it, and the SDK app beside it."""

    def __init__(self, port: int, sdk_port: int, event_key: str = "dev", api_key: str | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.sdk_url = f"http://127.0.0.1:{sdk_port}"
        self.event_key = event_key
        headers = {} if api_key is None else {"authorization": f"Bearer {api_key}"}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def send(self, name: str, data: dict[str, Any] | None = None) -> str:
        response = self.http.post(f"/e/{self.event_key}", json={"name": name, "data": data or {}})
        assert response.status_code == 200, response.text
        [event_id] = response.json()["ids"]
        return str(event_id)

    def runs_of(self, event_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/api/v1/events/{event_id}/runs")
        assert response.status_code == 200, response.text
        return list(response.json()["runs"])

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def until(self, check: Callable[[], Any], what: str, seconds: float = 20) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {seconds} s waiting for {what}")
            time.sleep(0.05)

    def run_of(self, event_id: str, status: str | tuple[str, ...] = FINISHED, seconds: float = 20) -> dict[str, Any]:
        """The one run ``event_id`` started, once its status is one of ``status``."""
        wanted = (status,) if isinstance(status, str) else status

        def check() -> dict[str, Any] | None:
            runs = self.runs_of(event_id)
            return self.run(runs[0]["id"]) if runs and runs[0]["status"] in wanted else None

        return dict(self.until(check, f"the run of event {event_id} to be {' or '.join(wanted)}", seconds))

    def functions(self) -> list[str]:
        return [f["id"] for f in self.http.get("/api/v1/functions").json()["functions"]]

    def wait_synced(self, function_id: str, tarry: subprocess.Popen[str], seconds: float = 30) -> None:
        """Until ``function_id`` is listed (the SDK synced); ``AssertionError`` with its output if ``tarry``
        ended meanwhile."""

        def listed() -> bool:
            if tarry.poll() is not None:
                raise AssertionError(f"{tarry.args!r} ended:\n{halt(tarry)}")
            try:
                return function_id in self.functions()
            except httpx.HTTPError:  # not listening yet
                return False

        self.until(listed, f"{function_id} to be synced", seconds)

    def calls(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.sdk_url}/calls", timeout=10).json())


class Dev:
    """``tarry dev --sdk-url`` on a SQLite file, and the SDK app in dev mode that syncs with it."""

    def __init__(self, database: Path, app: str | None = None) -> None:
        self.port, self.sdk_port = free_port(), free_port()
        self.database = database
        self.app = [] if app is None else [app]
        self.sdk = sdk_server(self.sdk_port, INNGEST_DEV=f"http://127.0.0.1:{self.port}")
        self.tarry: subprocess.Popen[str] | None = None
        self.server = Server(self.port, self.sdk_port)
        self.start()

    def start(self) -> None:
        self.tarry = spawn([*TARRY, "dev", *self.app, "--port", str(self.port), "--database-url", f"sqlite:///{self.database}",
                            "--sdk-url", f"{self.server.sdk_url}/api/inngest"], {"TARRY_SDK_TIMEOUT": "4s"})  # fmt: skip
        self.server.wait_synced("shop-retry", self.tarry)

    def stop(self) -> str:
        assert self.tarry is not None
        return halt(self.tarry)

    def close(self) -> None:
        self.stop()
        halt(self.sdk)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    pair = Dev(tmp_path_factory.mktemp("sdk") / "tarry.db")
    try:
        yield pair
    finally:
        pair.close()


@pytest.fixture
def server(dev: Dev) -> Server:
    return dev.server
