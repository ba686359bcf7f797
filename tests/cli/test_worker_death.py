"""A process that exists to work ends, non-zero and saying why, when its worker's loop dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

TARRY = [sys.executable, "-c", "from tarry._cli import main; main()"]
WAIT_S = 45  # real seconds the process may take to notice and exit (a loaded machine)

BROKEN_APP = '''
"""An app whose store has a bug: after a few turns, claiming runs raises (not a StoreError)."""
import tarry
from tarry._store.sql import SQLStore

_real_tick = SQLStore.tick
_turns = [0]


async def _tick(self, *args, **kwargs):
    _turns[0] += 1
    if _turns[0] > 3:
        raise KeyError("a bug in the store's claim")
    return await _real_tick(self, *args, **kwargs)


SQLStore.tick = _tick
app = tarry.Tarry("broken-store")


@app.function(trigger="noop")
async def noop(ctx):
    return None
'''


def _broken_app(folder: Path) -> str:
    (folder / "broken_store.py").write_text(BROKEN_APP)
    return str(folder / "broken_store.py") + ":app"


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    url = "sqlite:///" + str(folder / "tarry.db")
    return subprocess.run(
        [*TARRY, *args, "--database-url", url], capture_output=True, text=True, env=env, timeout=WAIT_S, cwd=folder
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_tarry_worker_exits_non_zero_when_its_loop_dies(tmp_path: Path) -> None:
    result = _run(tmp_path, "worker", _broken_app(tmp_path))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "the worker stopped working (KeyError" in result.stderr, result.stderr
    assert "its loop ended" in result.stderr, "the loop's death is logged"


def test_tarry_dev_exits_non_zero_when_its_worker_dies(tmp_path: Path) -> None:
    result = _run(tmp_path, "dev", _broken_app(tmp_path), "--port", str(_free_port()))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "the worker stopped working (KeyError" in result.stderr, result.stderr


def test_tarry_worker_stopped_by_sigterm_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "fine.py").write_text("import tarry\napp = tarry.Tarry('fine')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    url = "sqlite:///" + str(tmp_path / "tarry.db")
    with subprocess.Popen(
        [*TARRY, "worker", str(tmp_path / "fine.py") + ":app", "--database-url", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        assert "Tarry worker for 'fine'" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 0, stderr
