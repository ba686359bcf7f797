"""Syncs of Inngest SDK apps shared by the processes of one database, on both stores.

Each ``tarry.Tarry`` here stands for a process of its own (its own registry):
one takes the syncs (``POST /fn/register`` calls ``sync.register``), the others
learn of them from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import tarry
from tarry._sdk import sync
from tests.conftest import LIMIT

URL = "http://127.0.0.1:9/api/inngest"


def app_sync(app_id: str, *functions: tuple[str, str]) -> dict[str, Any]:
    """A sync of ``app_id`` with functions ``(id, event)``."""
    return {"appname": app_id, "url": URL, "v": "0.1", "deploy_type": "ping", "sdk": "py:v0.5.19",
            "framework": "fast_api", "functions": [{
                "id": fid, "name": fid, "triggers": [{"event": event}],
                "steps": {"step": {"id": "step", "name": "step",
                                   "runtime": {"type": "http", "url": f"{URL}?fnId={fid}&stepId=step"}}},
            } for fid, event in functions]}  # fmt: skip


async def test_the_store_refuses_a_function_id_another_sdk_app_has(make_app: Callable[..., tarry.Tarry]) -> None:
    first, second = make_app(), make_app()  # two processes: neither has seen the other's syncs
    async with first, second:
        assert await sync.register(first.engine, app_sync("a", ("a-pay-f", "a/pay")))
        with pytest.raises(ValueError, match="function 'a-pay-f': a function of the SDK app 'a' has this id"):
            await sync.register(second.engine, app_sync("a-pay", ("a-pay-f", "a/other")))
        assert [row.app_id for row in await second.engine.store.sdk_apps()] == ["a"]  # nothing of it stored
        assert "a-pay-f" not in second.functions


async def test_a_changed_sync_is_seen_by_another_process_also_in_the_same_millisecond(
    make_app: Callable[..., tarry.Tarry],
) -> None:  # fmt: skip
    taker, other = make_app(), make_app()  # one VirtualClock: every sync has the same time
    async with taker, other:
        await sync.register(taker.engine, app_sync("shop", ("shop-f", "shop/one")))
        await sync.load(other.engine)
        assert other.engine.registry.route("shop/one", None, None) == [("shop-f", ())]
        await sync.register(taker.engine, app_sync("shop", ("shop-f", "shop/two")))
        await sync.load(other.engine)
        assert other.engine.registry.route("shop/one", None, None) == []
        assert other.engine.registry.route("shop/two", None, None) == [("shop-f", ())]


async def test_a_process_without_a_worker_routes_events_to_functions_synced_elsewhere(
    make_app: Callable[..., tarry.Tarry], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(sync, "FOLLOW_S", 0.02)
    taker, sender = make_app(), make_app()
    await taker.start(worker=False)
    await sender.start(worker=False)  # a web app that only sends: it has no heartbeat
    try:
        await sync.register(taker.engine, app_sync("shop", ("shop-order", "shop/order")))
        async with asyncio.timeout(LIMIT):
            while "shop-order" not in sender.functions:
                await asyncio.sleep(0.01)
        [event_id] = await sender.send(tarry.Event("shop/order"))
        [run] = await sender.runs_for_event(event_id)
        assert (run.function_id, run.status) == ("shop-order", "queued")
    finally:
        await sender.close()
        await taker.close()
