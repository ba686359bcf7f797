"""State-changing requests from other sites are refused in dev and serve; servers and the dashboard pass."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

import tarry
from tarry._server import create_app
from tests.conftest import LIMIT
from tests.server.conftest import EVENT_KEY_1, SIGNING_KEY, define
from tests.server.test_http import JSON, Served, resume_url, started

BEARER = {"authorization": f"Bearer {SIGNING_KEY}"}


@pytest.fixture(params=["dev", "serve"])
async def either(
    request: pytest.FixtureRequest, make_app: Callable[..., tarry.Tarry]
) -> AsyncIterator[tuple[tarry.Tarry, httpx.AsyncClient, str, dict[str, str]]]:
    """(app, client, event key, credentials) for dev and for serve."""
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        if request.param == "dev":
            server, key, auth = create_app(app, manage=False), "k", {}
        else:
            server = create_app(app, mode="serve", event_keys=[EVENT_KEY_1], api_key=SIGNING_KEY, manage=False)
            key, auth = EVENT_KEY_1, BEARER
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://testserver") as c:
            yield app, c, key, auth


CROSS_SITE = [
    {"sec-fetch-site": "cross-site"},
    {"sec-fetch-site": "same-site"},
    {"origin": "http://evil.example"},
    {"origin": "http://testserver:8080"},  # another port is another origin
    {"origin": "null"},
    {"origin": "http://evil.example", "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_every_state_changing_route_refuses_another_site(
    either: tuple[tarry.Tarry, httpx.AsyncClient, str, dict[str, str]], headers: dict[str, str]
) -> None:
    app, client, key, auth = either
    placed = await client.post(f"/e/{key}", json={"name": "order/placed", "data": {"id": "7"}})
    run = await started(app, placed.json()["ids"][0])
    for path, body in ((f"/e/{key}", {"name": "a/b"}), ("/api/v1/events", {"name": "a/b"}),
                       ("/api/v1/notify/order-7", {"paid": True}), (f"/api/v1/runs/{run.id}/cancel", None),
                       (f"/api/v1/runs/{run.id}/rerun", None), ("/api/v1/runs/cancel", {"function_id": "order"}),
                       ("/api/v1/runs/rerun", {"function_id": "order"}),
                       ("/api/v1/anything-added-later", None)):  # fmt: skip
        response = await client.post(path, json=body, headers={**headers, **auth})
        assert response.status_code == 403, path
        assert "is refused" in response.json()["error"], path
        empty = await client.post(path, headers={**headers, **auth, "content-length": "0"})
        assert empty.status_code == 403, path
    assert [e.event.name for e in await app.engine.store.list_events(None, 10)] == ["order/placed"]
    assert (await app.get_run(run.id)).status == "waiting"


async def test_servers_and_same_origin_pages_pass(
    either: tuple[tarry.Tarry, httpx.AsyncClient, str, dict[str, str]],
) -> None:
    app, client, key, auth = either
    server_to_server = await client.post(f"/e/{key}", json={"name": "order/placed", "data": {"id": "8"}})
    assert server_to_server.status_code == 200  # no Origin, no Sec-Fetch-*: curl, SDKs, tarry send, webhooks
    run = await started(app, server_to_server.json()["ids"][0])
    dashboard = {"origin": "http://testserver", "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors", **auth}
    sent = await client.post("/api/v1/events", json={"name": "from/dashboard"}, headers=dashboard)
    assert sent.status_code == 200
    notified = await client.post("/api/v1/notify/order-8", json={"paid": 1}, headers={"sec-fetch-site": "none",
                                                                                      **auth})  # fmt: skip
    assert notified.status_code == 200 and notified.json()["run_ids"] == [run.id]
    assert (await app.wait_for_run(run.id, timeout=LIMIT)).status == "completed"


async def test_a_resume_link_works_from_mail_and_from_another_site(
    either: tuple[tarry.Tarry, httpx.AsyncClient, str, dict[str, str]],
) -> None:
    """The token is the credential: a click from a mail client, or a button on the app's own site, resumes."""
    app, client, key, _ = either
    for headers in ({"sec-fetch-site": "none", "sec-fetch-mode": "navigate", "accept": "text/html"},
                    {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "accept": "text/html"}):  # fmt: skip
        run_id, path = await resume_url_of(app, client, key)
        assert (await client.get(path, headers=headers)).status_code == 200
        assert (await app.wait_for_run(run_id, timeout=LIMIT)).status == "completed"
    run_id, path = await resume_url_of(app, client, key)
    form = {"origin": "https://shop.example", "sec-fetch-site": "cross-site", "accept": "text/html"}
    assert (await client.post(path, data={"approve": "yes"}, headers=form)).status_code == 200
    assert (await app.wait_for_run(run_id, timeout=LIMIT)).output["event"] == {"approve": "yes"}


async def resume_url_of(app: tarry.Tarry, client: httpx.AsyncClient, key: str) -> tuple[str, str]:
    response = await client.post(f"/e/{key}", json={"name": "refund/requested", "data": {"orderId": "o"}})
    run = await started(app, response.json()["ids"][0])
    [wait] = await app.engine.open_waits(run.id)
    assert wait.resume_url is not None
    return run.id, wait.resume_url.removeprefix("http://testserver")


async def test_dev_posts_to_the_api_must_be_json_even_when_empty(served: Served) -> None:
    app, client = served
    placed = await client.post("/e/k", json={"name": "order/placed", "data": {"id": "9"}})
    run = await started(app, placed.json()["ids"][0])
    for path in ("/api/v1/notify/order-9", f"/api/v1/runs/{run.id}/cancel", "/e/k"):
        for headers in ({"content-length": "0"}, {"content-type": "text/plain", "content-length": "0"},
                        {"content-type": "application/x-www-form-urlencoded"}):  # fmt: skip
            response = await client.post(path, headers=headers)
            assert response.status_code == 415 and "application/json" in response.json()["error"], (path, headers)
    assert (await app.get_run(run.id)).status == "waiting"
    assert (await client.post(f"/api/v1/runs/{run.id}/cancel", headers=JSON)).json() == {"cancelled": True}


async def test_resume_posts_need_no_json_type(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client)
    assert (await client.post(path, headers={"content-length": "0"})).status_code == 200
    assert (await app.wait_for_run(run_id, timeout=LIMIT)).status == "completed"
