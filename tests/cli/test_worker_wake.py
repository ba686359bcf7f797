"""A ``tarry worker`` on a SQLite file starts a run another process stored at once, not at its poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import tarry
from tests.cli.commands import start, stop

SLOW_POLL_APP = '''
"""The app of the test, its worker polling every two minutes: only a wake-up can make it quick."""
import time

import tarry
from tarry._engine import worker

worker.POLL_S = 120
app = tarry.Tarry("wake")


@app.function(trigger="wake/go")
async def go(ctx):
    return await ctx.step.run("picked-up", time.time)
'''
QUICK_S = 5.0  # real seconds, on a loaded machine; the poll would take 120


async def _send_and_wait(url: str, registry: tarry.Tarry | None) -> tuple[float, float]:
    """Send one event from a client without a worker; (seconds until the run's first step, until the
    client saw it finished)."""
    client = tarry.Tarry("wake", database_url=url)
    if registry is not None:
        client._registry = registry._registry  # a web app with the same functions routes its events itself
    await client.start(worker=False)
    try:
        sent = time.time()
        [event_id] = await client.send(tarry.Event("wake/go"))
        deadline = time.monotonic() + 60
        while not (runs := await client.runs_for_event(event_id)):
            assert time.monotonic() < deadline, "the worker never delivered the event"
            await asyncio.sleep(0.01)
        run = await client.wait_for_run(runs[0].id, timeout=60)
        return run.output - sent, time.time() - sent
    finally:
        await client.close()


def test_a_run_sent_by_another_process_starts_long_before_the_workers_poll(tmp_path: Path) -> None:
    (tmp_path / "slow_poll.py").write_text(SLOW_POLL_APP)
    url = "sqlite:///" + str(tmp_path / "wake.db")
    worker = start("worker", str(tmp_path / "slow_poll.py") + ":app", "--database-url", url, cwd=tmp_path)
    assert worker.stdout is not None
    assert worker.stdout.readline().startswith("Tarry worker for 'wake'"), stop(worker)
    namespace: dict[str, object] = {}
    exec(SLOW_POLL_APP.replace("worker.POLL_S = 120", ""), namespace)
    same_functions = namespace["app"]
    assert isinstance(same_functions, tarry.Tarry)
    for registry in (same_functions, None):  # a run made by the client; an event only the worker can route
        picked_up, seen = asyncio.run(_send_and_wait(url, registry))
        assert picked_up < QUICK_S, f"the worker started the run {picked_up:.1f} s after the send"
        assert seen < QUICK_S, f"the client saw the run finished {seen:.1f} s after the send"
    _, err = stop(worker)
    assert "Traceback" not in err, err
