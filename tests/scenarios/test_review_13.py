"""Failure handlers run only for runs that failed: an event a caller sends under a system event's name is
no failed run."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import tarry
from tests.conftest import LIMIT


async def test_a_sent_function_failed_event_does_not_run_the_failure_handler(app: tarry.Tarry) -> None:
    """§10: the handler runs once for each failed run of the function. An event named
    ``tarry/function.failed`` that a caller sends (``app.send``, ``POST /e/{key}``) names a run that never
    failed; it must not start the handler (it may be refused, or stored and start nothing)."""
    if "on_failure" not in inspect.signature(app.function).parameters:
        pytest.skip("failure handlers are not built yet")
    handled: list[Any] = []

    async def refund(ctx: tarry.Context) -> None:
        handled.append(ctx.event.data)

    @app.function(trigger="shop/checkout", on_failure=refund)
    async def checkout(ctx: tarry.Context) -> str:
        return "ok"

    forged = tarry.Event("tarry/function.failed", {"function_id": "checkout", "run_id": "never-ran",
                                                   "error": {"name": "Forged", "message": "x"}, "event": {}})  # fmt: skip
    async with app:
        try:
            [event_id] = await app.send(forged)
        except ValueError:
            return  # refused: a name the engine keeps for its own events
        await app.idle(timeout=LIMIT)
        assert await app.runs_for_event(event_id) == [] and handled == []
        assert await app.list_runs(function_id="checkout-failure") == []
