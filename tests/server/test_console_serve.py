"""``tarry serve``'s dashboard in a real browser: signing in with TARRY_DASHBOARD_KEY, the session cookie, the
CSRF token on every state-changing request; and, in ``serve`` and ``dev``, a page on another origin that
auto-submits a form to each state-changing route is refused, and nothing changes.

``/resume/{token}`` is left out of the cross-site posts: its token is the credential (docs/server.md).
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from tests.server.console_support import DASHBOARD_KEY, SIGNING_KEY, Server, serving


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``tarry serve`` with event keys, a signing key and a dashboard key."""
    yield from serving(tmp_path_factory.mktemp("serve"), "serve")


def sign_in(page: Page, server: Server, key: str) -> None:
    page.goto(server.url + "/")
    form = page.locator("form#signin")
    expect(form).to_be_visible()
    form.locator('input[name="key"][type="password"]').fill(key)
    form.locator('[type="submit"]').click()


def test_serve_without_a_dashboard_key_says_how_to_enable_it(tmp_path: Path, console_page: Page) -> None:
    for server in serving(tmp_path, "serve", dashboard_key=None):
        response = console_page.goto(server.url + "/")
        assert response is not None and response.status == 404
        expect(console_page.locator("body")).to_contain_text("TARRY_DASHBOARD_KEY")
        expect(console_page.locator("body")).to_contain_text("16 characters")


def test_a_wrong_key_is_refused_and_the_right_one_signs_in(served: Server, console_page: Page) -> None:
    run = served.start("console/order.placed", {"orderId": "o-serve"}, until=("waiting",))
    sign_in(console_page, served, "not-the-dashboard-key")
    expect(console_page.locator("#signin-error")).to_have_text("That dashboard key is wrong.")
    assert not [c for c in console_page.context.cookies() if c["name"] == "tarry_session"]
    sign_in(console_page, served, SIGNING_KEY)  # the signing key is not the dashboard key
    expect(console_page.locator("#signin-error")).to_be_visible()

    sign_in(console_page, served, DASHBOARD_KEY)
    expect(console_page.locator(f'table#runs tbody tr[data-run-id="{run["id"]}"]')).to_be_visible()
    [cookie] = [c for c in console_page.context.cookies() if c["name"] == "tarry_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http here; over https it is Secure
    assert DASHBOARD_KEY not in cookie["value"]
    page_text = console_page.content()
    assert SIGNING_KEY not in page_text and DASHBOARD_KEY not in page_text
    assert console_page.evaluate("JSON.stringify(Object.assign({}, sessionStorage, localStorage))") == "{}"
    expect(console_page.locator("#live")).to_have_attribute("data-state", "live")  # the stream is signed in too


def test_every_post_of_the_page_carries_the_csrf_token(served: Server, console_page: Page) -> None:
    run = served.start("console/order.placed", {"orderId": "o-csrf"}, until=("waiting",))
    sign_in(console_page, served, DASHBOARD_KEY)
    expect(console_page.locator("table#runs")).to_be_visible()
    token = console_page.locator('meta[name="tarry-csrf"]').get_attribute("content")
    assert token
    posts: list[Request] = []
    console_page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    console_page.goto(f"{served.url}/#/runs/{run['id']}")
    console_page.locator("button#cancel-run").click()
    console_page.locator("button#confirm-yes").click()
    expect(console_page.locator("#run-header")).to_have_attribute("data-status", "cancelled")
    console_page.goto(served.url + "/#/send")
    form = console_page.locator("form#send-form")
    form.locator('input[name="name"]').fill("console/quick.requested")
    form.locator('button[type="submit"]').click()
    expect(console_page.locator("#sent")).to_be_visible()
    assert len(posts) >= 2
    for post in posts:
        assert post.headers.get("x-tarry-csrf") == token, f"{post.url} was sent without the CSRF token"


def test_a_post_from_the_page_without_the_csrf_token_is_refused(served: Server, console_page: Page) -> None:
    run = served.start("console/order.placed", {"orderId": "o-no-token"}, until=("waiting",))
    sign_in(console_page, served, DASHBOARD_KEY)
    expect(console_page.locator("table#runs")).to_be_visible()
    for header in ({}, {"X-Tarry-CSRF": "a-wrong-token"}):
        answer = console_page.evaluate(
            """async ([path, headers]) => {
                 const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json", ...headers},
                                              body: "{}", credentials: "same-origin"});
                 return [r.status, await r.text()];
               }""",
            [f"/api/v1/runs/{run['id']}/cancel", header],
        )
        assert answer[0] == 403, answer
        assert "CSRF" in json.loads(answer[1])["error"]
    assert served.run(run["id"])["status"] == "waiting"


def test_an_api_call_without_a_session_sends_the_page_back_to_sign_in(served: Server, console_page: Page) -> None:
    sign_in(console_page, served, DASHBOARD_KEY)
    expect(console_page.locator("table#runs")).to_be_visible()
    console_page.context.clear_cookies()
    console_page.goto(served.url + "/#/events")
    expect(console_page.locator("form#signin")).to_be_visible()


# -- cross-site form posts -------------------------------------------------------


class Elsewhere:
    """A web site on another origin (another port of 127.0.0.1) whose page auto-submits a form:
    ``/post?to=<url>&fields=<json object>``."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                to = query["to"][0]
                fields: dict[str, Any] = json.loads(query.get("fields", ["{}"])[0])
                inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}">'
                                 for k, v in fields.items())  # fmt: skip
                enctype = query.get("enctype", ["application/x-www-form-urlencoded"])[0]
                body = (f'<!doctype html><form method="post" action="{html.escape(to)}" enctype="{enctype}">'
                        f"{inputs}</form><script>document.forms[0].submit()</script>").encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Elsewhere]:
    site = Elsewhere()
    yield site
    site.close()


def state_of(server: Server, *run_ids: str) -> Any:
    """What a refused post must leave as it was: the runs named, the newest events, every run's id."""
    runs = {run_id: server.run(run_id)["status"] for run_id in run_ids}
    events = [e["id"] for e in server.get("/api/v1/events", limit=20)["events"]]
    return runs, events, sorted(r["id"] for r in server.runs(limit=500))


def post_from_elsewhere(page: Page, elsewhere: Elsewhere, to: str, fields: dict[str, Any], enctype: str) -> int:
    with page.expect_navigation(url=lambda url: url.startswith(to.split("?")[0])) as navigation:
        page.goto(f"{elsewhere.url}/post?" + str(httpx.QueryParams(to=to, fields=json.dumps(fields), enctype=enctype)))
    response = navigation.value
    assert response is not None
    return response.status


def actions(server: Server, waiting: str, finished: str) -> list[tuple[str, dict[str, Any]]]:
    """Each state-changing route of the server, with form fields that would change something."""
    return [
        (f"/e/{server.event_key}", {"name": "console/quick.requested", "data": "{}"}),
        ("/api/v1/events", {"name": "console/quick.requested"}),
        ("/api/v1/notify/order-key", {"data": "{}"}),
        (f"/api/v1/runs/{waiting}/cancel", {}),
        (f"/api/v1/runs/{finished}/rerun", {"from_step": "transform"}),
        ("/api/v1/runs/cancel", {"function_id": "order"}),
        ("/api/v1/runs/rerun", {"function_id": "pipeline", "status": "completed"}),
        ("/dashboard/sign-in", {"key": DASHBOARD_KEY}),
        ("/dashboard/sign-out", {}),
    ]


@pytest.mark.parametrize("mode", ["dev", "serve"])
def test_a_cross_site_form_post_to_any_action_is_refused(
    mode: str, tmp_path: Path, console_page: Page, elsewhere: Elsewhere
) -> None:
    for server in serving(tmp_path, mode):
        waiting = server.start("console/order.placed", {"orderId": "o-cross"}, until=("waiting",))["id"]
        finished = server.start("console/pipeline.started", until=("completed",))["id"]
        if mode == "serve":
            sign_in(console_page, server, DASHBOARD_KEY)
            expect(console_page.locator("table#runs")).to_be_visible()
        before = state_of(server, waiting, finished)
        for path, fields in actions(server, waiting, finished):
            for enctype in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data"):
                status = post_from_elsewhere(console_page, elsewhere, server.url + path, fields, enctype)
                assert status in (401, 403, 404, 405, 415), (
                    f"{mode}: a cross-site {enctype} post to {path} answered {status}"
                )
        console_page.wait_for_timeout(500)
        assert state_of(server, waiting, finished) == before, f"{mode}: a cross-site post changed something"
        if mode == "serve":  # and the session is still there: the sign-out was refused too
            console_page.goto(server.url + "/")
            expect(console_page.locator("table#runs")).to_be_visible()
