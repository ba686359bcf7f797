"""An app served over ASGI (httpx, in process) with a VirtualClock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock

EVENT_KEY_1, EVENT_KEY_2 = "event-key-one-0001", "event-key-two-0002"
SIGNING_KEY = "signing-key-s3cret"


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
        server = create_app(app, mode="serve", event_keys=[EVENT_KEY_1, EVENT_KEY_2], api_key=SIGNING_KEY, manage=False)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


@pytest.fixture
def clock_of() -> Callable[[tarry.Tarry], VirtualClock]:
    def get(app: tarry.Tarry) -> VirtualClock:
        assert isinstance(app.clock, VirtualClock)
        return app.clock

    return get


ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "examples" / "onboarding.py") + ":app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_dev(tmp_path_factory.mktemp("dev"), APP)


def serve_dev(folder: Path, target: str) -> Iterator[str]:
    """``tarry dev target`` on a SQLite file in ``folder``: yields its URL once it answers, stops it after."""
    port = free_port()
    env = {**os.environ, "TARRY_DATABASE_URL": "sqlite:///" + str(folder / "dev.db")}
    process = subprocess.Popen(
        [sys.executable, "-c", "from tarry._cli import main; main()", "dev", target, "--port", str(port)],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"tarry dev did not start: {output}")
        time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(10)


# -- the console's browser tests (tests/server/test_console*.py) ------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, driven by Playwright; the tests that use it are skipped where it is not installed.

    One per module, shared by every browser test of it: Playwright's sync API refuses to start while another
    instance of it is open, and one held for the whole session would outlive the modules that need it."""
    from playwright.sync_api import sync_playwright

    from tests.server.console_support import CHROMIUM, launch

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


@pytest.fixture
def console_page(chromium: Any) -> Iterator[Any]:
    """A fresh page at 1280 x 800, in a fixed time zone; any uncaught error of the page's script fails the test."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, timezone_id="Europe/Paris")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"the page's script raised: {errors}"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``tarry dev`` on tests/server/console_app.py, shared by the tests of one module."""
    from tests.server.console_support import serving

    yield from serving(tmp_path_factory.mktemp("console"))
