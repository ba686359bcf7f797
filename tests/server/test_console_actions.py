"""The console's actions in a real browser against ``tarry dev``: cancel, rerun, rerun from a step, bulk
cancel and rerun of what a filter selects, the resume form, and one action done with the keyboard alone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.server.console_support import Server, eventually, serving


def open_run(page: Page, server: Server, run_id: str, status: str) -> None:
    page.goto(f"{server.url}/#/runs/{run_id}")
    expect(page.locator("#run-header")).to_have_attribute("data-status", status)


def test_cancel_asks_first_and_no_keeps_the_run(console: Server, console_page: Page) -> None:
    run = console.start("console/order.placed", {"orderId": "o-cancel"}, until=("waiting",))
    open_run(console_page, console, run["id"], "waiting")
    expect(console_page.locator("button#rerun")).to_be_hidden()  # not finished
    console_page.locator("button#cancel-run").click()
    dialog = console_page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    console_page.locator("button#confirm-no").click()
    expect(dialog).to_be_hidden()
    console_page.wait_for_timeout(300)
    assert console.run(run["id"])["status"] == "waiting"

    console_page.locator("button#cancel-run").click()
    console_page.locator("button#confirm-yes").click()
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "cancelled")
    assert console.run(run["id"])["status"] == "cancelled"
    expect(console_page.locator("button#rerun")).to_be_visible()  # a finished run can be rerun


def test_rerun_goes_to_the_new_run_linked_to_the_old(console: Server, console_page: Page) -> None:
    old = console.start("console/pipeline.started", until=("completed",))
    open_run(console_page, console, old["id"], "completed")
    console_page.locator("button#rerun").click()
    expect(console_page).not_to_have_url(re.compile(rf"#/runs/{old['id']}$"))
    new_id = console_page.url.rsplit("/", 1)[1]
    assert console.run(new_id)["rerun_of"] == old["id"]
    expect(console_page.locator("a#rerun-of")).to_have_attribute("href", re.compile(rf"#/runs/{old['id']}$"))
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "completed")


def test_rerun_from_a_step_shows_the_new_run_linked_to_the_old(console: Server, console_page: Page) -> None:
    old = console.start("console/pipeline.started", until=("completed",))
    open_run(console_page, console, old["id"], "completed")
    console_page.locator('button[data-action="rerun-from"][data-step-id="transform"]').click()
    expect(console_page).not_to_have_url(re.compile(rf"#/runs/{old['id']}$"))
    new_id = console_page.url.rsplit("/", 1)[1]
    new = console.wait_run(new_id, "completed")
    assert new["rerun_of"] == old["id"]
    assert [s["id"] for s in new["steps"]] == ["fetch", "transform", "load"]
    link = console_page.locator("a#rerun-of")
    expect(link).to_have_attribute("href", re.compile(rf"#/runs/{old['id']}$"))
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "completed")

    link.click()  # and the old run lists its rerun
    expect(console_page.locator("#run-header")).to_contain_text(old["id"])
    expect(console_page.locator(f'#reruns a[href$="#/runs/{new_id}"]')).to_be_visible()


def test_the_bulk_buttons_need_a_filter_other_than_status(console: Server, console_page: Page) -> None:
    console_page.goto(console.url + "/")
    expect(console_page.locator("button#bulk-cancel")).to_be_disabled()
    expect(console_page.locator("button#bulk-rerun")).to_be_disabled()
    console_page.locator('form#run-filters select[name="status"]').select_option("failed")
    expect(console_page.locator("button#bulk-cancel")).to_be_disabled()
    console_page.locator('form#run-filters select[name="function"]').select_option("charge")
    expect(console_page.locator("button#bulk-cancel")).to_be_enabled()
    expect(console_page.locator("button#bulk-rerun")).to_be_enabled()


def test_bulk_rerun_of_the_failed_runs_of_a_function_says_how_many_first(console: Server, console_page: Page) -> None:
    for card in ("bulk-1", "bulk-2", "bulk-3"):
        console.start("console/charge.requested", {"card": card}, until=("failed",))
    failed = console.count("charge", "failed")
    console_page.goto(console.url + "/#/?function=charge&status=failed")
    console_page.locator("button#bulk-rerun").click()
    expect(console_page.locator("dialog#confirm")).to_be_visible()
    expect(console_page.locator("#confirm-text")).to_contain_text(f"{failed:,}")
    console_page.locator("button#confirm-yes").click()
    expect(console_page.locator("#bulk-result")).to_contain_text(f"{failed:,}")
    reruns = eventually(lambda: [r for r in console.runs(function="charge", limit=500) if r["rerun_of"]]
                        if console.count("charge", "failed") >= 2 * failed else None, "the reruns to fail too", 30)  # fmt: skip
    assert len(reruns) >= failed


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A ``tarry dev`` of this test alone."""
    yield from serving(tmp_path)


@pytest.mark.timeout(240)
def test_bulk_cancel_of_1000_runs(fresh: Server, console_page: Page) -> None:
    fresh.send_many([{"name": "console/hold.requested", "data": {"n": n}} for n in range(1000)])
    eventually(lambda: fresh.count("hold", "waiting") == 1000, "1,000 runs waiting", 150)
    fresh.start("console/order.placed", {"orderId": "o-bystander"}, until=("waiting",))
    console_page.goto(fresh.url + "/#/?function=hold")
    expect(console_page.locator('#run-counts [data-count-status="waiting"]')).to_contain_text("1,000")
    console_page.locator("button#bulk-cancel").click()
    expect(console_page.locator("#confirm-text")).to_contain_text("1,000")
    console_page.locator("button#confirm-yes").click()
    expect(console_page.locator("#bulk-result")).to_contain_text("1,000", timeout=60_000)
    assert fresh.count("hold", "cancelled") == 1000
    assert fresh.count("hold", "waiting") == 0
    assert fresh.count("order", "waiting") == 1  # another function's run is left alone
    expect(console_page.locator('#run-counts [data-count-status="cancelled"]')).to_contain_text("1,000")


def test_the_resume_form_sends_the_persons_payload_and_the_run_gets_it(console: Server, console_page: Page) -> None:
    run = console.start("console/approval.requested", until=("waiting",))
    open_run(console_page, console, run["id"], "waiting")
    form = console_page.locator("#run-waits form.resume-form")
    payload = form.locator('textarea[name="payload"]')
    assert json.loads(payload.input_value()) == {}
    form.locator('button[data-payload="reject"]').click()
    assert json.loads(payload.input_value()) == {"approved": False}
    form.locator('button[data-payload="approve"]').click()
    assert json.loads(payload.input_value()) == {"approved": True}

    payload.fill("[1, 2")  # not JSON: said so, nothing sent
    form.locator('button[type="submit"]').click()
    expect(form.locator(".resume-error")).to_be_visible()
    assert console.run(run["id"])["status"] == "waiting"

    payload.fill('{"approved": true, "note": "fine by Ada"}')
    form.locator('button[type="submit"]').click()
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "completed")
    assert console.run(run["id"])["output"] == {"approved": True, "note": "fine by Ada"}
    expect(console_page.locator("body")).to_contain_text("fine by Ada")  # the run's output, on its page


def focus_by_tab(page: Page, selector: str, presses: int = 80) -> None:
    """Press Tab until ``selector`` has the focus."""
    for _ in range(presses):
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} was not reached with {presses} presses of Tab")


def test_cancel_a_run_with_the_keyboard_alone(console: Server, console_page: Page) -> None:
    run = console.start("console/order.placed", {"orderId": "o-keyboard"}, until=("waiting",))
    open_run(console_page, console, run["id"], "waiting")
    focus_by_tab(console_page, "button#cancel-run")
    outline = console_page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.boxShadow]; }"
    )
    assert outline != ["none", "none"], "the focused button shows no focus ring"
    console_page.keyboard.press("Enter")
    dialog = console_page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    for _ in range(6):  # the dialog keeps the focus
        console_page.keyboard.press("Tab")
        assert console_page.evaluate("document.activeElement.closest('dialog#confirm') !== null")
    console_page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert console.run(run["id"])["status"] == "waiting"

    focus_by_tab(console_page, "button#cancel-run")
    console_page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    focus_by_tab(console_page, "button#confirm-yes", 6)
    console_page.keyboard.press("Enter")
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "cancelled")
    assert console.run(run["id"])["status"] == "cancelled"
