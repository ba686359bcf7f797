"""A failed run over HTTP, on both stores: its traceback, every attempt's error and a step's wake time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="http/flaky", retries=2)
    async def flaky(ctx: tarry.Context) -> str:
        def call_upstream() -> str:
            raise tarry.RetryAfterError(f"busy {ctx.attempt}", "1m")

        return await ctx.step.run("call", call_upstream)


@pytest.fixture
async def client(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[tuple[tarry.Tarry, httpx.AsyncClient]]:
    app = make_app()
    define(app)
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http


async def test_a_runs_json_has_the_traceback_every_attempts_error_and_the_wake_time(
    client: tuple[tarry.Tarry, httpx.AsyncClient], clock: VirtualClock
) -> None:
    app, http = client
    [event_id] = await app.send(tarry.Event("http/flaky"))
    await app.idle(timeout=LIMIT)
    [run] = await app.runs_for_event(event_id)
    waiting = (await http.get(f"/api/v1/runs/{run.id}")).json()
    [step] = waiting["steps"]
    assert step["status"] == "retrying" and step["error"] == step["errors"][-1]
    assert round((datetime.fromisoformat(step["wake_at"]) - clock.now()).total_seconds()) == 60
    await clock.advance("2m")
    await app.wait_for_run(run.id, timeout=LIMIT)
    failed = (await http.get(f"/api/v1/runs/{run.id}")).json()
    [step] = failed["steps"]
    assert step["wake_at"] is None
    assert [e["message"] for e in step["errors"]] == ["busy 0", "busy 1", "busy 2"]
    assert all(", in call_upstream\n" in e["traceback"] for e in step["errors"])
    assert failed["error"]["name"] == "StepError" and ", in flaky\n" in failed["error"]["traceback"]
    assert failed["error"]["traceback"].endswith("step 'call' failed: RetryAfterError: busy 2\n")
