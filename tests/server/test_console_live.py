"""The console's live updates in a real browser against ``tarry dev``: pushed, patched in place, never
resetting what the user is typing, selecting or scrolling; a lost server shows "reconnecting" and keeps the data."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, Request, expect

from tests.server.console_support import Server, eventually, start_server

# counts the messages of the page's EventSource streams (installed before the page's script runs)
COUNT_STREAM = """
window.__streamMessages = 0;
window.__streams = [];
if (window.EventSource) {
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    constructor(url, options) {
      super(url, options);
      window.__streams.push(String(url));
      for (const type of ["message", "run", "detail", "new", "counts", "waits", "events"]) {
        this.addEventListener(type, () => { window.__streamMessages += 1; });
      }
    }
  };
}
"""


@contextmanager
def churn(server: Server, every: float = 0.1) -> Iterator[None]:
    """Runs start and finish in the background (one every ``every`` s) while the block runs."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def loop() -> None:
        n = 0
        while not stop.wait(every):
            n += 1
            try:
                server.send("console/quick.requested", {"n": f"churn-{n}"})
            except BaseException as exc:  # reported by the test, not lost in the thread
                failures.append(exc)
                return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
    assert not failures, failures


def live(page: Page) -> None:
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#live")).to_have_text("live")


def test_typing_in_the_search_while_runs_change_loses_nothing(console: Server, console_page: Page) -> None:
    console_page.add_init_script(COUNT_STREAM)
    console_page.goto(console.url + "/")
    live(console_page)
    search = console_page.locator('form#run-filters input[name="q"]')
    search.click()
    text = "typed-slowly-while-runs-change"
    state = "() => { const q = document.querySelector('form#run-filters input[name=\"q\"]');" \
            " return [q.value, q.selectionStart, q.selectionEnd, document.activeElement === q]; }"  # fmt: skip
    with churn(console):
        before = console_page.evaluate("window.__streamMessages")
        for n, character in enumerate(text, 1):
            console_page.keyboard.type(character)
            console_page.wait_for_timeout(90)
            assert console_page.evaluate(state) == [text[:n], n, n, True], f"after {n} characters"
        console_page.evaluate("document.querySelector('form#run-filters input[name=\"q\"]').setSelectionRange(3, 9)")
        console_page.wait_for_timeout(1500)
        assert console_page.evaluate(state) == [text, 3, 9, True]  # a selection survives too
        console_page.keyboard.press("ArrowRight")  # the caret goes on from the selection's end
        console_page.keyboard.type("!")
        assert console_page.evaluate(state)[0] == text[:9] + "!" + text[9:]
        arrived = console_page.evaluate("window.__streamMessages") - before
    assert console_page.evaluate("window.__streams"), "the page opened no EventSource stream"
    assert arrived > 0, "no live update arrived while typing"


def test_a_row_is_patched_in_place_and_new_runs_appear_at_the_top(console: Server, console_page: Page) -> None:
    order = console.start("console/order.placed", {"orderId": "o-patched"}, until=("waiting",))
    console_page.goto(console.url + "/#/?function=order")
    live(console_page)
    row = console_page.locator(f'table#runs tbody tr[data-run-id="{order["id"]}"]')
    expect(row).to_have_attribute("data-status", "waiting")
    row.evaluate("row => { row.__kept = true; }")
    console_page.evaluate("window.__notReloaded = true")
    completed = console_page.locator('#run-counts [data-count-status="completed"]')
    done_before = console.count("order", "completed")
    console.send("console/order.paid", {"orderId": "o-patched"})
    expect(row).to_have_attribute("data-status", "completed")
    assert row.evaluate("row => row.__kept === true"), "the row was redrawn, not patched"
    expect(completed).to_have_text(re.compile(rf"^\D*{done_before + 1}\D*$"))  # counts follow

    newer = console.start("console/order.placed", {"orderId": "o-newer"})
    first = console_page.locator("table#runs tbody tr[data-run-id]").first
    expect(first).to_have_attribute("data-run-id", newer["id"])
    assert row.evaluate("row => row.__kept === true")
    assert console_page.evaluate("window.__notReloaded") is True


def test_the_run_page_follows_its_run_without_a_reload(console: Server, console_page: Page) -> None:
    order = console.start("console/order.placed", {"orderId": "o-follow"}, until=("waiting",))
    console_page.goto(f"{console.url}/#/runs/{order['id']}")
    live(console_page)
    step = console_page.locator('#timeline .step[data-step-id="wait-for-payment"]')
    expect(step).to_have_attribute("data-status", "waiting")
    expect(console_page.locator("#run-waits")).to_contain_text("console/order.paid")
    console_page.evaluate("window.__notReloaded = true")
    console.send("console/order.paid", {"orderId": "o-follow", "amount": 12})
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "completed")
    expect(step).to_have_attribute("data-status", "completed")
    expect(console_page.locator("body")).to_contain_text('"amount"')
    assert console_page.evaluate("window.__notReloaded") is True


def test_the_scroll_position_stays_while_updates_arrive(console: Server, console_page: Page) -> None:
    console.send_many([{"name": "console/quick.requested", "data": {"n": f"scroll-{n}"}} for n in range(60)])
    eventually(lambda: console.count("quick", "completed") >= 60, "60 quick runs", 60)
    console_page.set_viewport_size({"width": 1280, "height": 400})
    console_page.goto(console.url + "/")
    live(console_page)
    expect(console_page.locator("table#runs tbody tr").nth(40)).to_be_attached()
    console_page.evaluate("window.scrollTo(0, 600)")
    scrolled = console_page.evaluate("window.scrollY")
    assert scrolled > 0
    with churn(console, every=0.2):
        console_page.wait_for_timeout(3000)
    assert console_page.evaluate("window.scrollY") >= scrolled - 5, "the page scrolled back up"


def test_finished_runs_are_not_fetched_again(console: Server, console_page: Page) -> None:
    done = console.start("console/pipeline.started", until=("completed",))
    asked: list[str] = []

    def note(request: Request) -> None:
        path = urlsplit(request.url).path
        if path.startswith(f"/api/v1/runs/{done['id']}"):
            asked.append(request.url)

    console_page.goto(f"{console.url}/#/runs/{done['id']}")
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "completed")
    console_page.on("request", note)
    with churn(console, every=0.2):
        console_page.wait_for_timeout(3000)
    assert not asked, f"a finished run was fetched again: {asked}"


def test_a_finished_runs_page_does_not_say_reconnecting(console: Server, console_page: Page) -> None:
    done = console.start("console/pipeline.started", until=("completed",))
    console_page.goto(f"{console.url}/#/runs/{done['id']}")
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "completed")
    console_page.wait_for_timeout(3000)  # the run has nothing left to follow: the server is not lost for it
    live(console_page)


def test_a_lost_server_shows_reconnecting_keeps_the_data_and_comes_back(tmp_path: Path, console_page: Page) -> None:
    server = start_server(tmp_path)
    try:
        run = server.start("console/order.placed", {"orderId": "o-lost"}, until=("waiting",))
        console_page.goto(server.url + "/")
        live(console_page)
        row = console_page.locator(f'table#runs tbody tr[data-run-id="{run["id"]}"]')
        expect(row).to_be_visible()
        rows = console_page.locator("table#runs tbody tr[data-run-id]").count()
        server.stop()
        status = console_page.locator("#live")
        expect(status).to_have_attribute("data-state", "reconnecting", timeout=20_000)
        expect(status).to_have_text("reconnecting…")
        expect(row).to_be_visible()  # the last data stays
        assert console_page.locator("table#runs tbody tr[data-run-id]").count() == rows
        port = urlsplit(server.url).port
        server = start_server(tmp_path, port=port)
        expect(status).to_have_attribute("data-state", "live", timeout=30_000)
        server.send("console/order.paid", {"orderId": "o-lost"})
        expect(row).to_have_attribute("data-status", "completed", timeout=20_000)
    finally:
        server.stop()
