"""Signing in to the dashboard of `tarry serve` in a real browser, and a page of another site that tries to act."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.server.conftest import APP, free_port

CHROMIUM = "/usr/bin/chromium"
EVENT_KEY, SIGNING_KEY, DASHBOARD_KEY = "event-key-browser-01", "signing-key-browser-01", "dashboard-key-browser-1"
BEARER = {"authorization": f"Bearer {SIGNING_KEY}"}
EVIL = "http://evil.example/"  # another site, its page made up by the browser's router
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def serve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tarry serve`` with a dashboard key, on a SQLite file: its URL once it answers."""
    folder = tmp_path_factory.mktemp("serve")
    (folder / "dashboard.key").write_text(DASHBOARD_KEY)
    port = free_port()
    env = {**os.environ, "TARRY_DATABASE_URL": f"sqlite:///{folder / 'serve.db'}", "TARRY_EVENT_KEYS": EVENT_KEY,
           "TARRY_SIGNING_KEY": SIGNING_KEY, "TARRY_DASHBOARD_KEY_FILE": str(folder / "dashboard.key")}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-c", "from tarry._cli import main; main()", "serve", APP, "--host", "127.0.0.1",
         "--port", str(port)], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
            raise AssertionError(f"tarry serve did not start: {output}")
        time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:  # the module's Chromium (tests/server/conftest.py)
    context = chromium.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url + "/")
    page.locator('#signin input[name="key"]').fill(key)
    page.locator('#signin button[type="submit"]').click()


def waiting_run(url: str) -> str:
    """A run of the example app waiting for its resume URL (sent with the event key): its id."""
    [event_id] = httpx.post(f"{url}/e/{EVENT_KEY}", json={"name": "refund/requested", "data": {"orderId": "b"}}
                            ).json()["ids"]  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = httpx.get(f"{url}/api/v1/events/{event_id}/runs", headers=BEARER).json()["runs"]
        if runs and runs[0]["status"] == "waiting":
            return str(runs[0]["id"])
        time.sleep(0.05)
    raise AssertionError("the run did not start waiting")


def fulfil_with(html: str) -> Callable[[Route], None]:
    def fulfil(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=html)

    return fulfil


def event_names(url: str) -> list[str]:
    return [e["name"] for e in httpx.get(f"{url}/api/v1/events", headers=BEARER).json()["events"]]


def test_serve_refuses_a_wrong_dashboard_key_and_accepts_the_right_one(serve_url: str, page: Page) -> None:
    sign_in(page, serve_url, SIGNING_KEY)  # the signing key is not the dashboard key
    expect(page.locator("#signin-error")).to_have_text("That dashboard key is wrong.")
    expect(page.locator('nav a[data-nav="runs"]')).to_have_count(0)
    page.locator('#signin input[name="key"]').fill(DASHBOARD_KEY)
    page.locator('#signin button[type="submit"]').click()
    expect(page.locator('nav a[data-nav="runs"]')).to_be_visible()
    expect(page.locator("table#runs")).to_be_visible()
    [cookie] = [c for c in page.context.cookies() if c["name"] == "tarry_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"] and cookie["path"] == "/"
    assert page.evaluate("document.cookie") == "", "the page's script cannot read the session"
    assert page.evaluate("JSON.stringify(Object.keys(sessionStorage))") == "[]", "no key kept in the tab"


def test_the_signed_in_page_sends_its_token_and_changes_things(serve_url: str, page: Page) -> None:
    sign_in(page, serve_url, DASHBOARD_KEY)
    expect(page.locator("table#runs")).to_be_visible()
    page.goto(serve_url + "/#/send")
    page.locator('#send-form input[name="name"]').fill("from/the-dashboard")
    page.locator('#send-form input[name="name"]').press("Enter")
    expect(page.locator("#sent")).to_be_visible()
    assert "from/the-dashboard" in event_names(serve_url)


def test_signing_out_and_a_lost_session_lead_back_to_the_sign_in_form(serve_url: str, page: Page) -> None:
    sign_in(page, serve_url, DASHBOARD_KEY)
    expect(page.locator("table#runs")).to_be_visible()
    page.locator('#sign-out button[type="submit"]').click()
    expect(page.locator("#signin")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "tarry_session"]
    sign_in(page, serve_url, DASHBOARD_KEY)
    expect(page.locator("table#runs")).to_be_visible()
    page.context.clear_cookies()  # e.g. the session expired while the page was open
    page.goto(serve_url + "/#/events")  # the next API call answers 401: the page reloads into the sign-in form
    expect(page.locator("#signin")).to_be_visible()


def test_a_form_on_another_site_cannot_act_even_while_the_user_is_signed_in(serve_url: str, page: Page) -> None:
    run_id = waiting_run(serve_url)
    sign_in(page, serve_url, DASHBOARD_KEY)
    expect(page.locator("table#runs")).to_be_visible()
    answers: dict[str, int] = {}
    page.on("response", lambda r: answers.__setitem__(r.url, r.status) if r.url.startswith(serve_url) else None)
    for action, fields in ((f"/api/v1/runs/{run_id}/cancel", {}), ("/api/v1/events", {"name": "evil/event"}),
                           ("/api/v1/runs/cancel", {"function_id": "refund_approval"}),
                           ("/dashboard/sign-out", {}), ("/dashboard/sign-in", {"key": "evil-guess-0123456789"})):  # fmt: skip
        inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
        html = f'<form id="f" method="post" action="{serve_url}{action}">{inputs}</form><script>f.submit()</script>'
        page.route(EVIL, fulfil_with(html))
        page.goto(EVIL)
        page.wait_for_url(serve_url + action)
        page.unroute(EVIL)
        assert answers[serve_url + action] == 403, action
        expect(page.locator("body")).to_contain_text("is refused")
    run = httpx.get(f"{serve_url}/api/v1/runs/{run_id}", headers=BEARER).json()
    assert run["status"] == "waiting" and "evil/event" not in event_names(serve_url)
    page.goto(serve_url + "/")
    expect(page.locator("table#runs")).to_be_visible()  # still signed in: the sign-out form was refused too
