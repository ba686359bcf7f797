"""The dashboard in a real browser: Playwright driving Debian's Chromium against `tarry dev`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.server.conftest import serve_dev

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:  # the module's Chromium (tests/server/conftest.py)
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def send(url: str, name: str, data: dict, started: bool = True) -> str:  # type: ignore[type-arg]
    """Send an event; with ``started``, return once it started a run, else once it was delivered."""
    response = httpx.post(f"{url}/e/browser", json={"name": name, "data": data})
    event_id: str = response.json()["ids"][0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/api/v1/events/{event_id}/runs").json()
        if body["runs"] if started else body["event"]["delivered"]:
            break
        time.sleep(0.05)
    return event_id


def test_a_waiting_run_is_resumed_by_its_button(dev_server: str, page: Page) -> None:
    event_id = send(dev_server, "refund/requested", {"orderId": "o-browser"})
    [run] = httpx.get(f"{dev_server}/api/v1/events/{event_id}/runs").json()["runs"]
    page.goto(dev_server + "/#/waits")
    row = page.locator(f'tr[data-wait-run="{run["id"]}"]')
    expect(row).to_contain_text("a resume URL")
    expect(page.locator("#runs, #waits")).to_be_visible()
    page.goto(dev_server + "/")
    expect(page.locator(f'tr[data-run-id="{run["id"]}"]')).to_contain_text("waiting")
    page.goto(dev_server + "/#/waits")
    row.locator(f'a[href*="#/runs/{run["id"]}?resume="]').click()  # the run page's resume form
    form = page.locator("#run-waits form.resume-form")
    form.locator('textarea[name="payload"]').fill('{"source": "dashboard"}')
    form.locator('button[type="submit"]').click()
    expect(page.locator("h1")).to_contain_text("completed", timeout=10_000)
    expect(page.locator('#timeline .step[data-step-id="wait-for-review"]')).to_contain_text("dashboard")


def test_the_run_page_shows_the_step_timeline(dev_server: str, page: Page) -> None:
    event_id = send(dev_server, "app/account.created", {"userId": "timeline"})
    [run] = httpx.get(f"{dev_server}/api/v1/events/{event_id}/runs").json()["runs"]
    page.goto(f"{dev_server}/#/runs/{run['id']}")
    expect(page.locator('#timeline .step[data-step-id="send-welcome"]')).to_contain_text("completed")
    expect(page.locator('#timeline .step[data-step-id="wait-for-onboarding"]')).to_contain_text("waiting")
    expect(page.locator("#run-waits")).to_contain_text("app/onboarding.completed")
    send(dev_server, "app/onboarding.completed", {"userId": "timeline"})
    expect(page.locator("h1")).to_contain_text("completed", timeout=10_000)  # updates without a reload
    expect(page.locator('#timeline .step[data-step-id="send-tips"]')).to_contain_text("completed")


def test_cancel_from_the_run_page(dev_server: str, page: Page) -> None:
    event_id = send(dev_server, "app/account.created", {"userId": "to-cancel"})
    [run] = httpx.get(f"{dev_server}/api/v1/events/{event_id}/runs").json()["runs"]
    page.goto(f"{dev_server}/#/runs/{run['id']}")
    page.locator("button#cancel-run").click()
    page.locator("button#confirm-yes").click()  # it asks first
    expect(page.locator("h1")).to_contain_text("cancelled", timeout=10_000)


def test_send_a_test_event_from_the_form(dev_server: str, page: Page) -> None:
    page.goto(dev_server + "/#/send")
    page.fill('input[name="name"]', "app/account.created")
    page.fill('textarea[name="data"]', '{"userId": "from-the-form"}')
    page.click('#send-form button[type="submit"]')
    expect(page.locator("#sent")).to_contain_text("Sent")
    page.locator("#sent a").click()
    expect(page.locator("#event-detail")).to_contain_text("onboarding-drip", timeout=10_000)


def test_bad_json_in_the_form_is_shown(dev_server: str, page: Page) -> None:
    page.goto(dev_server + "/#/send")
    page.fill('input[name="name"]', "app/x")
    page.fill('textarea[name="data"]', "{not json")
    page.click('#send-form button[type="submit"]')
    expect(page.locator("#send-error")).to_be_visible()


def test_a_resume_url_opened_in_the_browser_shows_the_confirmation(dev_server: str, page: Page) -> None:
    event_id = send(dev_server, "refund/requested", {"orderId": "o-open"})
    [run] = httpx.get(f"{dev_server}/api/v1/events/{event_id}/runs").json()["runs"]
    [wait] = httpx.get(f"{dev_server}/api/v1/waits", params={"run_id": run["id"]}).json()["waits"]
    page.goto(wait["resume_url"] + "?approve=yes")
    expect(page.locator("#message")).to_contain_text("recorded")
    page.goto(wait["resume_url"])
    expect(page.locator("h1")).to_contain_text("Link not usable")


FLOW_APP = str(Path(__file__).with_name("flow_app.py")) + ":app"


@pytest.fixture(scope="module")
def flow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_dev(tmp_path_factory.mktemp("flow"), FLOW_APP)


def test_the_dashboard_shows_why_a_run_waits_who_skipped_an_event_and_the_bursts_gathering(
    flow_server: str, page: Page
) -> None:
    send(flow_server, "shop/report.requested", {})
    send(flow_server, "shop/report.requested", {})  # the throttle's window is full: this run waits
    runs = httpx.get(f"{flow_server}/api/v1/runs", params={"function_id": "build-report"}).json()["runs"]
    held = runs[0]
    page.goto(flow_server + "/")
    expect(page.locator(f'tr[data-run-id="{held["id"]}"] [data-queued-reason]')).to_have_text("throttle")
    page.goto(f"{flow_server}/#/runs/{held['id']}")
    expect(page.locator("#queued-reason")).to_contain_text("throttle window")

    send(flow_server, "shop/sms.requested", {"to": "+100"})
    skipped = send(flow_server, "shop/sms.requested", {"to": "+100"}, started=False)  # over the rate limit
    page.goto(flow_server + "/#/events")
    expect(page.locator(f'tr[data-event-id="{skipped}"] .skip')).to_have_text("send-sms: rate_limit")
    page.goto(f"{flow_server}/#/events?id={skipped}")
    expect(page.locator("#event-detail")).to_contain_text("skipped by: send-sms: rate_limit")

    for _ in range(3):
        send(flow_server, "shop/cart.changed", {"cartId": "cart-7"}, started=False)
    page.goto(flow_server + "/#/buffers")
    row = page.locator('#buffers tr[data-kind="debounce"]')
    expect(row).to_contain_text("sync-cart")
    expect(row).to_contain_text('"cart-7"')
    expect(row.locator("td").nth(3)).to_have_text("3")
