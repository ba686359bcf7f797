"""An app served over ASGI (httpx, in process) with a VirtualClock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="app/account.created")
    async def onboarding(ctx: tarry.Context) -> str:
        done = await ctx.step.wait_for_event("wait", event="app/onboarding.completed", match="data.userId",
                                             timeout="3d")  # fmt: skip
        return "tips" if done else "nudge"

    @app.function(trigger="refund/requested")
    async def refund(ctx: tarry.Context) -> Any:
        handle = await ctx.step.resume_url("link", timeout="1d", payload={"orderId": ctx.event.data.get("orderId")},
                                           redirect_url=ctx.event.data.get("redirect"))  # fmt: skip
        return await ctx.step.wait_for_resume("review", handle)

    @app.function(trigger="order/placed")
    async def order(ctx: tarry.Context) -> Any:
        got = await ctx.step.wait_for_event("paid", key=f"order-{ctx.event.data['id']}", timeout="1h")
        return got.data if got else None


@pytest.fixture
async def served(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[tuple[tarry.Tarry, httpx.AsyncClient]]:
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        server = create_app(app, manage=False)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


@pytest.fixture
async def secured(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[tuple[tarry.Tarry, httpx.AsyncClient]]:
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        server = create_app(app, mode="serve", event_keys=["key-1", "key-2"], api_key="s3cret", manage=False)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


@pytest.fixture
def clock_of() -> Callable[[tarry.Tarry], VirtualClock]:
    def get(app: tarry.Tarry) -> VirtualClock:
        assert isinstance(app.clock, VirtualClock)
        return app.clock

    return get
