"""The README's quickstart, done as written: its app.py under `tarry dev`, its two `tarry send` commands."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.server.conftest import free_port
from tests.unit.test_docs import README, python_blocks

TARRY = [sys.executable, "-c", "from tarry._cli import main; main()"]


def quickstart() -> str:
    text = README.read_text()
    start = text.index("## Quickstart")
    return text[start : text.index("\n## ", start + 1)]


def commands(section: str, prefix: str) -> list[list[str]]:
    """The shell lines of the section that start with ``prefix``, split as the shell would."""
    return [shlex.split(line.strip()) for line in section.splitlines() if line.strip().startswith(prefix)]


def poll(url: str, done: Any) -> Any:
    """GET ``url`` until ``done(json)`` holds; the last answer after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        body = httpx.get(url, timeout=5).json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_the_quickstart_works_as_written(tmp_path: Path) -> None:
    section = quickstart()
    [app_py] = [block for block in python_blocks(section)]
    (tmp_path / "app.py").write_text(app_py)
    [dev] = commands(section, "tarry dev")
    sends = commands(section, "tarry send")
    assert dev == ["tarry", "dev", "app.py:app"] and len(sends) == 2

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    database = "sqlite:///" + str(tmp_path / "quickstart.db")
    server = subprocess.Popen([*TARRY, *dev[1:], "--port", str(port), "--database-url", database],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tarry dev did not start: {server.stdout.read() if server.stdout else ''}")
            time.sleep(0.05)

        def send(argv: list[str]) -> str:
            result = subprocess.run([*TARRY, *argv[1:]], cwd=tmp_path, env={**env, "TARRY_URL": url},
                                    capture_output=True, text=True, timeout=30)  # fmt: skip
            assert result.returncode == 0, result.stderr
            return result.stdout.strip()

        order_event = send(sends[0])
        runs = poll(f"{url}/api/v1/events/{order_event}/runs", lambda body: body["runs"])["runs"]
        [run] = runs
        assert run["function_id"] == "fulfil-order"
        assert poll(f"{url}/api/v1/runs/{run['id']}", lambda r: r["status"] == "waiting")["status"] == "waiting"

        assert re.fullmatch(r"[0-9A-Z]{26}", send(sends[1]))  # prints the event's id
        done = poll(f"{url}/api/v1/runs/{run['id']}", lambda r: r["status"] == "completed")
        assert done["status"] == "completed" and done["output"] == "shipped o-1 as parcel-o-1"
        assert [step["id"] for step in done["steps"]] == ["reserve-stock", "wait-for-payment", "ship"]

        dashboard = httpx.get(url + "/", timeout=5)  # step 5
        assert dashboard.status_code == 200 and "text/html" in dashboard.headers["content-type"]
    finally:
        server.terminate()
        server.wait(10)
    assert (tmp_path / "quickstart.db").exists() and not (tmp_path / ".tarry").exists()
