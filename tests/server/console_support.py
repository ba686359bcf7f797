"""What the console's browser tests share: a real ``tarry dev`` or ``tarry serve`` process on console_app,
a client of its HTTP API that waits with deadlines, and the browser launched from Debian's Chromium.

Nothing here writes outside the folder it is given (pytest's tmp_path).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from playwright.sync_api import Browser, Playwright

from tests.server.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
CONSOLE_APP = str(Path(__file__).with_name("console_app.py")) + ":app"
EVENT_KEY = "console-event-key-0001"
SIGNING_KEY = "console-signing-key-0001"
DASHBOARD_KEY = "console-dashboard-key-0001"
FINISHED = ("completed", "failed", "cancelled")
T = TypeVar("T")


def launch(p: Playwright) -> Browser:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 15) -> T:
    """Poll ``probe`` until it answers something truthy (returned), failing with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Server:
    """One server process and a client of its API (``headers``: its credentials, none in dev)."""

    url: str
    process: subprocess.Popen[str]
    headers: dict[str, str] = field(default_factory=dict)
    event_key: str = "console"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.url + path, params=params, headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=self.headers, timeout=60)

    def send(self, name: str, data: dict[str, Any] | None = None, **fields: Any) -> str:
        """Send one event; answers its id."""
        [event_id] = self.send_many([{"name": name, "data": data or {}, **fields}])
        return event_id

    def send_many(self, events: list[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(events), 200):
            response = httpx.post(f"{self.url}/e/{self.event_key}", json=events[start : start + 200], timeout=60)
            assert response.status_code == 200, response.text
            ids += response.json()["ids"]
        return ids

    def run_of(self, event_id: str, timeout: float = 15) -> dict[str, Any]:
        """The run the event started, once it did."""

        def started() -> dict[str, Any] | None:
            runs = self.get(f"/api/v1/events/{event_id}/runs")["runs"]
            return runs[0] if runs else None

        return eventually(started, f"a run of the event {event_id}", timeout)

    def start(self, name: str, data: dict[str, Any] | None = None, *, until: tuple[str, ...] = ()) -> dict[str, Any]:
        """Send an event and answer the run it started (once its status is one of ``until``, when given)."""
        run = self.run_of(self.send(name, data))
        return self.wait_run(run["id"], *until) if until else run

    def run(self, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.get(f"/api/v1/runs/{run_id}")
        return body

    def wait_run(self, run_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        def there() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in statuses else None

        return eventually(there, f"run {run_id} to be {' or '.join(statuses)}", timeout)

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.get("/api/v1/runs", **params)["runs"]
        return runs

    def count(self, function: str, status: str) -> int:
        """How many runs of ``function`` have ``status`` (paging the list, so it needs no counts route)."""
        total, cursor = 0, None
        while True:
            params: dict[str, Any] = {"function": function, "status": status, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            body = self.get("/api/v1/runs", **params)
            total += len(body["runs"])
            cursor = body["next_cursor"]
            if cursor is None:
                return total


def start_server(folder: Path, mode: str = "dev", *, dashboard_key: str | None = DASHBOARD_KEY,
                 target: str = CONSOLE_APP, port: int | None = None) -> Server:  # fmt: skip
    """``tarry dev`` (or ``tarry serve``, with its keys) on a SQLite file in ``folder``, once it answers."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    env["TARRY_DATABASE_URL"] = "sqlite:///" + str(folder / f"{mode}.db")
    command = [sys.executable, "-c", "from tarry._cli import main; main()", mode, target, "--port", str(port)]
    headers: dict[str, str] = {}
    event_key = "console"
    if mode == "serve":
        command += ["--host", "127.0.0.1"]
        env.update(TARRY_EVENT_KEYS=EVENT_KEY, TARRY_SIGNING_KEY=SIGNING_KEY)
        if dashboard_key is not None:
            env["TARRY_DASHBOARD_KEY"] = dashboard_key
        headers, event_key = {"Authorization": f"Bearer {SIGNING_KEY}"}, EVENT_KEY
    log = (folder / f"{mode}-{port}.log").open("w")
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    server = Server(f"http://127.0.0.1:{port}", process, headers, event_key)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"tarry {mode} did not start: {Path(log.name).read_text()}")
        try:
            return httpx.get(server.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    eventually(answers, f"tarry {mode} to answer", 30)
    return server


def serving(folder: Path, mode: str = "dev", **options: Any) -> Iterator[Server]:
    server = start_server(folder, mode, **options)
    try:
        yield server
    finally:
        server.stop()
