"""The console's views in a real browser (Debian's Chromium, Playwright) against ``tarry dev`` on console_app.

Only the page's stable hooks are used (the ids, ``data-*`` attributes and classes the console documents);
what the page shows is checked against what the HTTP API answers. Actions: test_console_actions.py; live
updates: test_console_live.py; ``serve``'s sign-in and the cross-site refusals: test_console_serve.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import Page, Response, expect

from tests.server.console_support import Server, eventually

PARIS = ZoneInfo("Europe/Paris")  # the browser context's time zone (conftest's console_page)
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def local_input(moment: datetime) -> str:
    """What a datetime-local input holds for ``moment`` in the browser's time zone."""
    return moment.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("table#runs tbody tr[data-run-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.runId)"
    )
    return ids


# -- functions -----------------------------------------------------------------


def test_the_functions_view_shows_each_function_its_triggers_options_and_runs_by_status(
    console: Server, console_page: Page
) -> None:
    console.start("console/charge.requested", {"card": "4000"}, until=("failed",))
    console_page.goto(console.url + "/#/functions")
    functions = console.get("/api/v1/functions")["functions"]
    for function in functions:
        expect(console_page.locator(f'table#functions tbody tr[data-function-id="{function["id"]}"]')).to_be_visible()
    charge = console_page.locator('table#functions tbody tr[data-function-id="charge"]')
    expect(charge).to_contain_text("console/charge.requested")
    expect(charge.locator('[data-count-status="failed"]')).to_have_text(
        re.compile(rf"^\D*{console.count('charge', 'failed')}\D*$")
    )
    expect(charge.locator('[data-count-status="completed"]')).to_have_text(re.compile(r"^\D*0\D*$"))
    expect(console_page.locator('tr[data-function-id="report"]')).to_contain_text("throttle")
    expect(console_page.locator('tr[data-function-id="sms"]')).to_contain_text("rate_limit")
    expect(console_page.locator('tr[data-function-id="cart"]')).to_contain_text("debounce")

    charge.locator('a[data-count-status="failed"], [data-count-status="failed"] a').first.click()  # runs, filtered
    expect(console_page).to_have_url(re.compile(r"#/\?(.*&)?function=charge"))
    expect(console_page).to_have_url(re.compile(r"#/\?(.*&)?status=failed"))
    expect(console_page.locator('form#run-filters select[name="function"]')).to_have_value("charge")
    expect(console_page.locator('form#run-filters select[name="status"]')).to_have_value("failed")
    rows = console_page.locator("table#runs tbody tr[data-run-id]")
    expect(rows.first).to_be_visible()
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)")) == {"failed"}


def test_send_a_test_event_from_a_function_starts_its_run(console: Server, console_page: Page) -> None:
    console_page.goto(console.url + "/#/functions")
    console_page.locator('tr[data-function-id="order"] button[data-action="test-event"]').click()
    expect(console_page).to_have_url(re.compile(r"#/send"))
    form = console_page.locator("form#send-form")
    expect(form.locator('input[name="name"]')).to_have_value("console/order.placed")
    form.locator('textarea[name="data"]').fill('{"orderId": "o-test-event"}')
    form.locator('button[type="submit"]').click()
    expect(console_page.locator("#sent")).to_be_visible()
    [event] = [e for e in console.get("/api/v1/events", name="console/order.placed")["events"]
               if e["data"] == {"orderId": "o-test-event"}]  # fmt: skip
    assert console.run_of(event["id"])["function_id"] == "order"


# -- runs ----------------------------------------------------------------------


def test_the_runs_view_counts_runs_by_status_and_filters_by_a_function_chosen_from_the_list(
    console: Server, console_page: Page
) -> None:
    console.start("console/pipeline.started", until=("completed",))
    console.start("console/order.placed", {"orderId": "o-counts"}, until=("waiting",))
    console_page.goto(console.url + "/")
    console_page.evaluate("window.__notReloaded = true")
    function = console_page.locator('form#run-filters select[name="function"]')
    expect(function.locator("option").nth(1)).to_be_attached()
    options = function.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert options[0] == ""
    assert sorted(options[1:]) == sorted(f["id"] for f in console.get("/api/v1/functions")["functions"])

    function.select_option("pipeline")
    expect(console_page).to_have_url(re.compile(r"#/\?(.*&)?function=pipeline"))
    counts = console_page.locator("#run-counts")
    for status in ("queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"):
        expected = console.count("pipeline", status)
        expect(counts.locator(f'[data-count-status="{status}"]')).to_have_text(re.compile(rf"^\D*{expected}\D*$"))
    shown = {r["id"] for r in console.runs(function="pipeline", limit=100)}
    expect(console_page.locator("table#runs tbody tr[data-run-id]")).to_have_count(len(shown))
    assert set(row_ids(console_page)) == shown

    console_page.locator('form#run-filters select[name="status"]').select_option("completed")
    expect(console_page).to_have_url(re.compile(r"#/\?(.*&)?status=completed"))
    expect(console_page.locator('table#runs tbody tr[data-status]:not([data-status="completed"])')).to_have_count(0)
    assert console_page.evaluate("window.__notReloaded") is True  # filters change the hash, not the page


def test_search_by_run_id_and_by_event_id(console: Server, console_page: Page) -> None:
    first = console.start("console/quick.requested", {"n": "search-1"}, until=("completed",))
    second_event = console.send("console/quick.requested", {"n": "search-2"})
    second = console.wait_run(console.run_of(second_event)["id"], "completed")
    console_page.goto(console.url + "/")
    search = console_page.locator('form#run-filters input[name="q"]')

    search.fill(first["id"])
    search.press("Enter")
    expect(console_page.locator("table#runs tbody tr[data-run-id]")).to_have_count(1)
    expect(console_page.locator(f'table#runs tbody tr[data-run-id="{first["id"]}"]')).to_be_visible()

    search.fill(second_event)
    search.press("Enter")
    expect(console_page.locator(f'table#runs tbody tr[data-run-id="{second["id"]}"]')).to_be_visible()
    expect(console_page.locator("table#runs tbody tr[data-run-id]")).to_have_count(1)


def test_a_time_range_in_local_time_filters_the_runs(console: Server, console_page: Page) -> None:
    run = console.start("console/quick.requested", {"n": "time-range"}, until=("completed",))
    created = datetime.fromisoformat(run["created_at"])
    console_page.goto(console.url + "/#/?function=quick")
    after = console_page.locator('form#run-filters input[name="created_after"]')
    before = console_page.locator('form#run-filters input[name="created_before"]')
    row = console_page.locator(f'table#runs tbody tr[data-run-id="{run["id"]}"]')
    expect(row).to_be_visible()

    after.fill(local_input(created + timedelta(minutes=2)))  # after it, in the browser's local time
    after.dispatch_event("change")
    expect(row).to_have_count(0)
    expect(console_page).to_have_url(re.compile(r"created_after="))
    after.fill(local_input(created - timedelta(minutes=2)))
    after.dispatch_event("change")
    before.fill(local_input(created + timedelta(minutes=2)))
    before.dispatch_event("change")
    expect(row).to_be_visible()
    before.fill(local_input(created - timedelta(minutes=1)))
    before.dispatch_event("change")
    expect(row).to_have_count(0)


def test_paging_through_more_runs_than_a_page_holds(console: Server, console_page: Page) -> None:
    ids = console.send_many([{"name": "console/child.requested", "data": {"n": n}} for n in range(130)])
    eventually(lambda: console.count("child", "completed") >= 130, "130 child runs to complete", 60)
    assert ids
    console_page.goto(console.url + "/#/?function=child")
    expect(console_page.locator("table#runs tbody tr[data-run-id]").first).to_be_visible()
    first_page = row_ids(console_page)
    assert 0 < len(first_page) < 130
    seen = list(first_page)
    while len(seen) < console.count("child", "completed"):
        console_page.locator("button#next-page").click()
        expect(console_page.locator(f'table#runs tbody tr[data-run-id="{seen[-1]}"]')).to_have_count(0)
        page_ids = row_ids(console_page)
        assert page_ids and not set(page_ids) & set(seen), "a page repeats runs of an earlier page"
        seen += page_ids
    newest_first = [r["id"] for r in sorted(console.runs(function="child", limit=500),
                                            key=lambda r: (r["created_at"], r["id"]), reverse=True)]  # fmt: skip
    assert seen == newest_first
    console_page.locator("button#prev-page").click()
    expect(console_page.locator(f'table#runs tbody tr[data-run-id="{seen[-1]}"]')).to_have_count(0)
    while console_page.locator(f'table#runs tbody tr[data-run-id="{first_page[0]}"]').count() == 0:
        console_page.locator("button#prev-page").click()
        console_page.wait_for_timeout(100)
    assert row_ids(console_page) == first_page


# -- a run's timeline ----------------------------------------------------------


def test_a_failed_run_shows_each_attempt_with_its_error_and_traceback(console: Server, console_page: Page) -> None:
    run = console.start("console/charge.requested", {"card": "4000-0000-timeline"}, until=("failed",))
    console_page.goto(f"{console.url}/#/runs/{run['id']}")
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "failed")
    step = console_page.locator('#timeline .step[data-step-id="charge-card"]')
    expect(step).to_have_attribute("data-status", "failed")
    attempts = step.locator(".attempt")
    expect(attempts).to_have_count(2)  # retries=1: the first attempt and one retry
    for n in range(2):
        expect(attempts.nth(n)).to_contain_text("card 4000-0000-timeline was declined")
        traceback = attempts.nth(n).locator("pre.traceback")
        expect(traceback).to_contain_text("Traceback")
        expect(traceback).to_contain_text("ValueError: card 4000-0000-timeline was declined")
    expect(console_page.locator("body")).to_contain_text("4000-0000-timeline")  # the run's input: its event
    expect(console_page.locator("button#rerun")).to_be_visible()
    expect(console_page.locator("button#cancel-run")).to_be_hidden()


def test_the_timeline_shows_each_steps_start_duration_and_output(console: Server, console_page: Page) -> None:
    run = console.start("console/pipeline.started", until=("completed",))
    console_page.goto(f"{console.url}/#/runs/{run['id']}")
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "completed")
    steps = console_page.locator("#timeline .step[data-step-id]")
    expect(steps).to_have_count(3)
    assert steps.evaluate_all("steps => steps.map(s => s.dataset.stepId)") == ["fetch", "transform", "load"]
    transform = console_page.locator('#timeline .step[data-step-id="transform"]')
    expect(transform).to_have_attribute("data-status", "completed")
    expect(transform.locator(".output")).to_contain_text('"rows"')
    expect(transform.locator(".output")).to_contain_text("6")
    expect(transform).to_contain_text(re.compile(r"\b\d+(\.\d+)? (ms|s)\b"))  # a readable duration
    titles = transform.locator("[title]").evaluate_all("els => els.map(e => e.title)")
    assert any(ISO.search(t) for t in titles), f"no ISO time in a title of the step: {titles}"
    for step in ("fetch", "transform", "load"):
        expect(console_page.locator(f'button[data-action="rerun-from"][data-step-id="{step}"]')).to_be_visible()


def test_a_sleep_and_a_retry_say_when_they_wake(console: Server, console_page: Page) -> None:
    napping = console.start("console/nap.requested", {"for": "10min"}, until=("sleeping",))
    console_page.goto(f"{console.url}/#/runs/{napping['id']}")
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "sleeping")
    wakes = console_page.locator('#timeline .step[data-step-id="nap"] .wakes')
    expect(wakes).to_have_text(re.compile(r"wakes .+ \(in (9 min \d+ s|10 min( 0 s)?)\)"))

    settling = console.start("console/settle.requested", until=("sleeping",))
    console_page.goto(f"{console.url}/#/runs/{settling['id']}")
    step = console_page.locator('#timeline .step[data-step-id="settle"]')
    expect(step.locator(".attempt")).to_contain_text("the bank is closed")
    expect(step.locator(".wakes")).to_have_text(re.compile(r"wakes .+ \(in (9 min \d+ s|10 min( 0 s)?)\)"))


def test_a_queued_run_says_why_it_is_not_running(console: Server, console_page: Page) -> None:
    console.start("console/report.requested")
    held = console.start("console/report.requested", until=("queued",))  # the throttle's window is full
    console_page.goto(f"{console.url}/#/runs/{held['id']}")
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "queued")
    expect(console_page.locator("#queued-reason")).to_contain_text("throttle")


def test_an_invoke_links_to_the_child_run(console: Server, console_page: Page) -> None:
    run = console.start("console/parent.requested", until=("completed",))
    console_page.goto(f"{console.url}/#/runs/{run['id']}")
    link = console_page.locator('#timeline .step[data-step-id="call-child"] a.child-run')
    expect(link).to_be_visible()
    link.click()
    expect(console_page).to_have_url(re.compile(r"#/runs/(?!" + run["id"] + ")"))
    child_id = console_page.url.rsplit("/", 1)[1]
    child = console.run(child_id)
    assert child["function_id"] == "child"
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "completed")
    expect(console_page.locator("#run-header")).to_contain_text(child_id)


def test_an_output_over_64_kib_shows_a_preview_and_a_download_link(console: Server, console_page: Page) -> None:
    run = console.start("console/export.requested", until=("completed",))
    responses: list[Response] = []
    console_page.on("response", lambda response: responses.append(response))
    console_page.goto(f"{console.url}/#/runs/{run['id']}")
    step = console_page.locator('#timeline .step[data-step-id="build-export"]')
    link = step.locator("a.download-output")
    expect(link).to_be_visible()
    expect(step.locator(".output")).to_contain_text("xxxxxxxx")  # the preview
    assert len(step.locator(".output").inner_text()) < 10_000
    href = link.get_attribute("href")
    assert href
    whole = httpx.get(httpx.URL(console.url).join(href), headers=console.headers)
    assert whole.status_code == 200
    assert json.loads(whole.content) == "x" * 100_000
    assert "attachment" in whole.headers["content-disposition"]
    fetched = [r for r in responses if r.request.resource_type in ("fetch", "xhr")
               and "text/event-stream" not in (r.headers.get("content-type") or "")]  # fmt: skip
    big = [r.url for r in fetched if len(r.body()) > 65536]  # none carries the whole output
    assert not big, f"the page fetched whole outputs: {big}"


# -- events, waits, buffers ----------------------------------------------------


def test_an_event_shows_the_runs_it_started_and_resumed_and_who_skipped_it(console: Server, console_page: Page) -> None:
    order = console.start("console/order.placed", {"orderId": "o-events"}, until=("waiting",))
    paid = console.send("console/order.paid", {"orderId": "o-events"})
    console.wait_run(order["id"], "completed")
    console_page.goto(console.url + "/#/events")
    console_page.locator(f'table#events tbody tr[data-event-id="{order["event"]["id"]}"] td').first.click()
    detail = console_page.locator("#event-detail")
    expect(detail.locator(f'a[href*="{order["id"]}"]')).to_be_visible()  # started
    console_page.goto(console.url + "/#/events")
    console_page.locator(f'table#events tbody tr[data-event-id="{paid}"] td').first.click()
    expect(detail.locator(f'a[href*="{order["id"]}"]')).to_be_visible()  # resumed
    expect(detail).to_contain_text("resumed")

    console.start("console/sms.requested", {"to": "+100"})
    skipped = console.send("console/sms.requested", {"to": "+100"})  # over the rate limit
    eventually(lambda: console.get(f"/api/v1/events/{skipped}")["skipped"], "the event to be skipped")
    console_page.goto(console.url + "/#/events")
    console_page.locator(f'table#events tbody tr[data-event-id="{skipped}"] td').first.click()
    expect(detail).to_contain_text("sms")
    expect(detail).to_contain_text("rate_limit")


def test_replay_an_event_from_the_events_view(console: Server, console_page: Page) -> None:
    original = console.send("console/quick.requested", {"n": "replayed"}, id="replay-me-1")
    console.run_of(original)
    console_page.goto(console.url + "/#/events")
    console_page.locator(f'button[data-action="replay"][data-event-id="{original}"]').click()
    form = console_page.locator("form#send-form")
    expect(form.locator('input[name="name"]')).to_have_value("console/quick.requested")
    assert json.loads(form.locator('textarea[name="data"]').input_value()) == {"n": "replayed"}
    expect(form.locator('input[name="id"]')).to_have_value("")  # a new event, not a duplicate
    form.locator('button[type="submit"]').click()
    expect(console_page.locator("#sent")).to_be_visible()
    replays = [e for e in console.get("/api/v1/events", name="console/quick.requested")["events"]
               if e["data"] == {"n": "replayed"}]  # fmt: skip
    assert len(replays) == 2
    [replay] = [e for e in replays if e["id"] != original]
    assert console.run_of(replay["id"])["function_id"] == "quick"


def test_the_waits_view_shows_what_each_run_waits_for_and_links_resume_waits_to_the_form(
    console: Server, console_page: Page
) -> None:
    order = console.start("console/order.placed", {"orderId": "o-waits"}, until=("waiting",))
    approval = console.start("console/approval.requested", until=("waiting",))
    console_page.goto(console.url + "/#/waits")
    row = console_page.locator(f'table#waits tbody tr[data-wait-run="{order["id"]}"]')
    expect(row).to_contain_text("console/order.paid")
    expect(row.locator("[title]").first).to_be_visible()  # since / until, the ISO time in a title
    resume = console_page.locator(f'table#waits tbody tr[data-wait-run="{approval["id"]}"]')
    resume.locator(f'a[href*="#/runs/{approval["id"]}"]').last.click()
    expect(console_page.locator("#run-waits form.resume-form")).to_be_visible()


def test_a_waits_send_one_link_fills_in_the_data_its_match_accepts_and_resumes_the_run(
    console: Server, console_page: Page
) -> None:
    order = console.start("console/order.placed", {"orderId": "o-send-one"}, until=("waiting",))
    console_page.goto(f"{console.url}/#/runs/{order['id']}")
    console_page.locator("#run-waits a", has_text="send one").click()
    expect(console_page.locator('form#send-form input[name="name"]')).to_have_value("console/order.paid")
    data = console_page.locator('form#send-form textarea[name="data"]')
    expect(data).not_to_have_value("{}")
    assert json.loads(data.input_value()) == {"orderId": "o-send-one"}
    console_page.locator('form#send-form button[type="submit"]').click()
    expect(console_page.locator("#sent")).to_be_visible()
    assert console.wait_run(order["id"], "completed")["output"] == {"orderId": "o-send-one"}


def test_the_waits_table_fits_a_1280_px_window(console: Server, console_page: Page) -> None:
    console.start("console/order.placed", {"orderId": "o-wide"}, until=("waiting",))
    console.start("console/approval.requested", until=("waiting",))
    console_page.goto(console.url + "/#/waits")
    expect(console_page.locator("table#waits tbody tr").first).to_be_visible()
    widths = console_page.evaluate(
        "(() => { const box = document.querySelector('table#waits').closest('.table-box');"
        " return [box.scrollWidth, box.clientWidth]; })()"
    )
    assert widths[0] <= widths[1], f"the waits table scrolls sideways at 1280 px: {widths[0]} px in {widths[1]}"


def test_the_buffers_view_shows_an_open_debounce(console: Server, console_page: Page) -> None:
    for _ in range(3):
        console.send("console/cart.changed", {"cartId": "cart-buffers"})
    eventually(lambda: console.get("/api/v1/buffers")["buffers"], "a debounce burst to open")
    console_page.goto(console.url + "/#/buffers")
    row = console_page.locator('table#buffers tr[data-kind="debounce"]')
    expect(row).to_contain_text("cart")
    expect(row).to_contain_text("cart-buffers")


# -- sending -------------------------------------------------------------------


def test_send_an_event_with_every_field(console: Server, console_page: Page) -> None:
    console_page.goto(console.url + "/#/send")
    form = console_page.locator("form#send-form")
    form.locator('input[name="name"]').fill("console/quick.requested")
    form.locator('textarea[name="data"]').fill('{"n": "every-field"}')
    form.locator('input[name="id"]').fill("sent-with-every-field")
    ts = datetime(2030, 5, 1, 9, 30, tzinfo=PARIS)
    form.locator('input[name="ts"]').fill(local_input(ts))
    form.locator('input[name="key"]').fill("key-every-field")
    form.locator('input[name="v"]').fill("2024-01")
    form.locator('button[type="submit"]').click()
    expect(console_page.locator("#sent")).to_be_visible()
    [event] = [e for e in console.get("/api/v1/events", name="console/quick.requested")["events"]
               if e["data"] == {"n": "every-field"}]  # fmt: skip
    assert event["v"] == "2024-01"
    assert event["key"] == "key-every-field"
    assert event["ts"] == int(ts.timestamp() * 1000)  # milliseconds since the epoch, as Inngest's events
    expect(console_page.locator("#sent")).to_contain_text(event["id"])
    form.locator('button[type="submit"]').click()  # the same id again: deduplicated, the first event's id
    expect(console_page.locator("#sent")).to_contain_text(event["id"])
    assert len([e for e in console.get("/api/v1/events", name="console/quick.requested")["events"]
                if e["data"] == {"n": "every-field"}]) == 1  # fmt: skip
    console_page.locator("#sent a").click()
    expect(console_page.locator("#event-detail")).to_be_visible()


def test_bad_json_in_the_send_form_is_shown_and_nothing_is_sent(console: Server, console_page: Page) -> None:
    before = console.get("/api/v1/events", limit=1)["events"]
    console_page.goto(console.url + "/#/send")
    form = console_page.locator("form#send-form")
    form.locator('input[name="name"]').fill("console/quick.requested")
    form.locator('textarea[name="data"]').fill("{not json")
    form.locator('button[type="submit"]').click()
    expect(console_page.locator("#send-error")).to_be_visible()
    assert console.get("/api/v1/events", limit=1)["events"] == before


# -- quality -------------------------------------------------------------------


def test_at_390_px_wide_no_view_scrolls_the_page_sideways(console: Server, console_page: Page) -> None:
    run = console.start("console/charge.requested", {"card": "4000-narrow"}, until=("failed",))
    console_page.set_viewport_size({"width": 390, "height": 844})
    for route, ready in (("#/functions", "table#functions tbody tr"), ("#/", "table#runs tbody tr"),
                         (f"#/runs/{run['id']}", "#timeline .step"), ("#/events", "table#events tbody tr"),
                         ("#/waits", "table#waits"), ("#/buffers", "table#buffers, #no-buffers"),
                         ("#/send", "form#send-form")):  # fmt: skip
        console_page.goto(f"{console.url}/{route}")
        expect(console_page.locator(ready).first).to_be_visible()
        widths = console_page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"{route} scrolls sideways at 390 px: {widths[0]} px wide in {widths[1]}"
        for nav in ("functions", "runs", "events", "waits", "buffers", "send"):
            box = console_page.locator(f'a[data-nav="{nav}"]').bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, f"nav {nav} is off screen"


def test_the_page_loads_nothing_from_another_origin(console: Server, console_page: Page) -> None:
    elsewhere: list[str] = []
    console_page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(console.url) else None)
    console_page.goto(console.url + "/#/functions")
    expect(console_page.locator("table#functions tbody tr").first).to_be_visible()
    for nav in ("runs", "events", "waits", "buffers", "send", "functions"):
        console_page.locator(f'a[data-nav="{nav}"]').click()
    console_page.wait_for_load_state("networkidle")
    assert not elsewhere, f"the page needs other origins (it must work offline): {elsewhere}"


def _durations_in(text: str) -> list[str]:
    return re.findall(r"\b\d+ (?:ms|s|min|h|d)\b", text)


def test_durations_read_as_words(console: Server, console_page: Page) -> None:
    run = console.start("console/nap.requested", {"for": "354s"}, until=("sleeping",))
    console_page.goto(f"{console.url}/#/runs/{run['id']}")
    wakes = console_page.locator('#timeline .step[data-step-id="nap"] .wakes')
    expect(wakes).to_have_text(re.compile(r"\(in 5 min \d+ s\)"))
    text: Any = console_page.locator("#timeline").inner_text()
    assert _durations_in(text), f"no readable duration in the timeline: {text!r}"
