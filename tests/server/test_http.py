"""Every route of §5 and its error statuses, over ASGI."""

from __future__ import annotations

import json

import httpx
import pytest

import tarry
from tarry.testing import VirtualClock
from tests.conftest import LIMIT
from tests.server.conftest import EVENT_KEY_2, SIGNING_KEY

Served = tuple[tarry.Tarry, httpx.AsyncClient]
JSON = {"content-type": "application/json"}  # in dev, even an empty POST to /api says it is JSON


async def started(app: tarry.Tarry, event_id: str) -> tarry.Run:
    await app.idle(timeout=LIMIT)
    [run] = await app.runs_for_event(event_id)
    return run


# -- POST /e/{key} --------------------------------------------------------------


async def test_one_event_and_a_batch(served: Served) -> None:
    app, client = served
    one = await client.post("/e/any-key", json={"name": "app/account.created", "data": {"userId": "u1"}})
    assert one.status_code == 200 and one.json()["status"] == 200
    [event_id] = one.json()["ids"]
    assert (await started(app, event_id)).status == "waiting"
    batch = await client.post("/e/any-key", json=[{"name": "a/b", "data": {"n": i}, "v": "1"} for i in range(3)])
    assert batch.status_code == 200 and len(batch.json()["ids"]) == 3


async def test_inngest_format_empty_id_and_zero_ts_mean_none(served: Served) -> None:
    app, client = served
    response = await client.post("/e/k", json=[{"name": "a/b", "data": {}, "id": "", "ts": 0, "user": {}}])
    assert response.status_code == 200
    [record] = await app.engine.store.list_events(None, 1)
    assert record.event.ts is not None and record.event.ts > 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "malformed JSON"),
        (json.dumps({"name": ""}).encode(), "name"),
        (json.dumps({"name": "a", "data": [1]}).encode(), "data"),
        (json.dumps([{"name": "ok"}, {"name": "a", "data": "x"}]).encode(), "event [1]"),
        (json.dumps("just a string").encode(), "JSON object"),
        (json.dumps({"name": "a", "colour": "red"}).encode(), "unknown event field"),
    ],
)
async def test_invalid_events_are_400_and_store_nothing(served: Served, body: bytes, problem: str) -> None:
    app, client = served
    response = await client.post("/e/k", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and problem in response.json()["error"]
    assert await app.engine.store.list_events(None, 10) == []


async def test_a_body_over_the_limit_is_413(served: Served) -> None:
    app, client = served
    huge = json.dumps([{"name": "a", "data": {"blob": "x" * 400_000}}] * 14)
    response = await client.post("/e/k", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["error"]
    assert await app.engine.store.list_events(None, 10) == []


async def test_an_event_over_512_kib_is_400(served: Served) -> None:
    _, client = served
    response = await client.post("/e/k", json={"name": "a", "data": {"blob": "x" * 600_000}})
    assert response.status_code == 400 and "524288" in response.json()["error"]


# -- resume URLs -------------------------------------------------------------------


async def resume_url(app: tarry.Tarry, client: httpx.AsyncClient, **data: str) -> tuple[str, str]:
    response = await client.post("/e/k", json={"name": "refund/requested", "data": {"orderId": "o1", **data}})
    run = await started(app, response.json()["ids"][0])
    [wait] = await app.engine.open_waits(run.id)
    assert wait.resume_url is not None and wait.resume_url.startswith("http://testserver/resume/")
    return run.id, wait.resume_url.removeprefix("http://testserver")


async def test_resume_by_api_post_with_a_json_body(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client)
    response = await client.post(path, json={"approve": True})
    assert response.status_code == 200 and response.json() == {"ok": True}
    done = await app.wait_for_run(run_id, timeout=LIMIT)
    assert done.output == {"orderId": "o1", "event": {"approve": True}}
    again = await client.post(path, json={"approve": False})
    assert again.status_code == 404 and again.json()["ok"] is False and "used" in again.json()["error"]


async def test_resume_by_a_browser_get_with_query_parameters(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client)
    response = await client.get(path + "?approve=yes&n=2", headers={"accept": "text/html"})
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "recorded" in response.text
    assert (await app.wait_for_run(run_id, timeout=LIMIT)).output["event"] == {"approve": "yes", "n": "2"}
    used = await client.get(path, headers={"accept": "text/html"})
    assert used.status_code == 404 and "text/html" in used.headers["content-type"]


async def test_resume_redirects_a_browser_to_the_redirect_url(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client, redirect="https://shop.example/thanks")
    response = await client.get(path, headers={"accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 303 and response.headers["location"] == "https://shop.example/thanks"
    assert (await app.wait_for_run(run_id, timeout=LIMIT)).output["event"] is None


async def test_a_form_post_resumes_with_its_fields(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client)
    response = await client.post(path, data={"decision": "approve"})
    assert response.status_code == 200
    assert (await app.wait_for_run(run_id, timeout=LIMIT)).output["event"] == {"decision": "approve"}


async def test_head_and_prefetch_never_consume_a_token(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client)
    assert (await client.head(path)).status_code == 204
    for header in ({"sec-purpose": "prefetch"}, {"purpose": "prefetch"}, {"sec-purpose": "prefetch;prerender"}):
        response = await client.get(path, headers={**header, "accept": "text/html"})
        assert response.status_code == 204 and response.headers["cache-control"] == "no-store"
    assert (await app.get_run(run_id)).status == "waiting"
    assert (await client.get(path)).status_code == 200
    assert (await client.head(path)).status_code == 404


async def test_unknown_and_expired_tokens_are_404(served: Served, clock: VirtualClock) -> None:
    app, client = served
    unknown = await client.post("/resume/not-a-token", json={})
    assert unknown.status_code == 404 and unknown.json() == {
        "ok": False, "error": "this resume link is unknown, already used, or expired"}  # fmt: skip
    run_id, path = await resume_url(app, client)
    await clock.advance("1d")
    assert (await client.post(path)).status_code == 404
    assert (await app.get_run(run_id)).status == "completed"


async def test_a_resume_body_that_is_not_an_object_is_400_and_keeps_the_token(served: Served) -> None:
    app, client = served
    _, path = await resume_url(app, client)
    bad = await client.post(path, content=b"[1, 2]", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    broken = await client.post(path, content=b"{oops", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert (await client.post(path, json={"ok": 1})).status_code == 200


# -- API ---------------------------------------------------------------------------


async def test_notify_returns_the_event_and_the_runs_it_resumed(served: Served) -> None:
    app, client = served
    placed = await client.post("/e/k", json={"name": "order/placed", "data": {"id": "7"}})
    run = await started(app, placed.json()["ids"][0])
    response = await client.post("/api/v1/notify/order-7", json={"paid": True})
    assert response.status_code == 200
    body = response.json()
    assert body["run_ids"] == [run.id] and isinstance(body["event_id"], str)
    assert (await app.wait_for_run(run.id, timeout=LIMIT)).output == {"paid": True}
    empty = await client.post("/api/v1/notify/order-8", headers=JSON)
    assert empty.status_code == 200 and empty.json()["run_ids"] == []
    bad = await client.post("/api/v1/notify/order-9", content=b"[1]", headers={"content-type": "application/json"})
    assert bad.status_code == 400


async def test_runs_list_get_and_cancel(served: Served) -> None:
    app, client = served
    ids = [(await client.post("/e/k", json={"name": "order/placed", "data": {"id": str(i)}})).json()["ids"][0]
           for i in range(3)]  # fmt: skip
    await app.idle(timeout=LIMIT)
    listed = (await client.get("/api/v1/runs")).json()["runs"]
    assert [r["event"]["id"] for r in listed] == ids[::-1], "newest first"
    assert {r["status"] for r in listed} == {"waiting"}
    assert (await client.get("/api/v1/runs?function_id=order&status=waiting&limit=2")).json()["runs"][0]["id"]
    run_id = listed[0]["id"]
    one = (await client.get(f"/api/v1/runs/{run_id}")).json()
    assert set(one) >= {"id", "function_id", "status", "output", "error", "event", "created_at", "ended_at", "steps"}
    assert one["steps"][0]["kind"] == "wait_for_event"
    assert (await client.post(f"/api/v1/runs/{run_id}/cancel", headers=JSON)).json() == {"cancelled": True}
    assert (await client.post(f"/api/v1/runs/{run_id}/cancel", headers=JSON)).json() == {"cancelled": False}
    assert (await client.get(f"/api/v1/runs/{run_id}")).json()["status"] == "cancelled"
    assert (await client.get("/api/v1/runs/nope")).status_code == 404
    assert (await client.post("/api/v1/runs/nope/cancel", headers=JSON)).status_code == 404
    assert (await client.get("/api/v1/runs?status=done")).status_code == 400
    assert (await client.get("/api/v1/runs?limit=0")).status_code == 400


async def test_events_and_the_runs_they_started_and_resumed(served: Served) -> None:
    app, client = served
    created = (await client.post("/e/k", json={"name": "app/account.created", "data": {"userId": "u"}})).json()
    run = await started(app, created["ids"][0])
    completed = (await client.post("/e/k", json={"name": "app/onboarding.completed", "data": {"userId": "u"}})).json()
    await app.wait_for_run(run.id, timeout=LIMIT)
    events = (await client.get("/api/v1/events")).json()["events"]
    assert events[0]["id"] == completed["ids"][0] or events[0]["name"].startswith("tarry/")
    by_id = {e["id"]: e for e in events}
    assert by_id[created["ids"][0]]["runs_started"] == 1
    assert by_id[completed["ids"][0]]["runs_resumed"] == 1
    started_by = (await client.get(f"/api/v1/events/{created['ids'][0]}/runs")).json()
    assert [r["id"] for r in started_by["runs"]] == [run.id] and started_by["resumed"] == []
    resumed_by = (await client.get(f"/api/v1/events/{completed['ids'][0]}/runs")).json()
    assert [r["id"] for r in resumed_by["resumed"]] == [run.id]
    assert (await client.get("/api/v1/events/nope/runs")).status_code == 404
    named = (await client.get("/api/v1/events?name=app/account.created")).json()["events"]
    assert [e["id"] for e in named] == created["ids"]


async def test_waits_say_what_each_run_waits_for(served: Served) -> None:
    app, client = served
    await client.post("/e/k", json={"name": "app/account.created", "data": {"userId": "u9"}})
    await client.post("/e/k", json={"name": "refund/requested", "data": {"orderId": "o9"}})
    await client.post("/e/k", json={"name": "order/placed", "data": {"id": "9"}})
    await app.idle(timeout=LIMIT)
    waits = (await client.get("/api/v1/waits")).json()["waits"]
    by_function = {w["function_id"]: w for w in waits}
    assert by_function["onboarding"]["events"] == ["app/onboarding.completed"]
    assert by_function["onboarding"]["match"] == {"data.userId": "u9"}
    assert by_function["order"]["match"] == {"key": "order-9"} and by_function["order"]["events"] == []
    assert by_function["refund"]["kind"] == "resume" and by_function["refund"]["resume_url"].startswith("http")
    assert all(w["since"] and w["until"] for w in waits)


async def test_post_events_through_the_api(served: Served) -> None:
    _, client = served
    response = await client.post("/api/v1/events", json={"name": "from/dashboard", "data": {}})
    assert response.status_code == 200 and len(response.json()["ids"]) == 1


async def test_openapi_metrics_and_health(served: Served) -> None:
    app, client = served
    await client.post("/e/k", json={"name": "app/account.created", "data": {"userId": "m"}})
    await app.idle(timeout=LIMIT)
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.") and "/e/{event_key}" in spec["paths"]
    text = (await client.get("/metrics")).text
    assert "tarry_events_received_total 1.0" in text
    assert 'tarry_runs{status="waiting"} 1.0' in text and "tarry_open_waits 1.0" in text
    assert "tarry_step_duration_seconds_bucket" in text
    assert (await client.get("/healthz")).json() == {"ok": True}


async def test_the_dashboard_page_is_served_with_its_own_assets(served: Served) -> None:
    _, client = served
    page = await client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text and "http" not in page.text.split("<body")[1]
    assert (await client.get("/static/app.js")).status_code == 200
    assert (await client.get("/static/app.css")).status_code == 200


# -- serve mode ----------------------------------------------------------------------


async def test_serve_accepts_only_its_event_keys(secured: Served) -> None:
    app, client = secured
    assert (await client.post(f"/e/{EVENT_KEY_2}", json={"name": "a"})).status_code == 200
    refused = await client.post("/e/wrong", json={"name": "a"})
    assert refused.status_code == 401 and "event key" in refused.json()["error"]
    assert len(await app.engine.store.list_events(None, 10)) == 1


async def test_serve_guards_the_api_with_the_signing_key(secured: Served) -> None:
    _, client = secured
    for method, path in (("GET", "/api/v1/runs"), ("GET", "/api/v1/events"), ("GET", "/api/v1/waits"),
                         ("POST", "/api/v1/notify/x"), ("GET", "/api/v1/runs/x"), ("POST", "/api/v1/runs/x/cancel"),
                         ("GET", "/api/v1/events/x/runs"), ("POST", "/api/v1/events")):  # fmt: skip
        assert (await client.request(method, path)).status_code == 401, path
        wrong = await client.request(method, path, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
    ok = await client.get("/api/v1/runs", headers={"authorization": f"Bearer {SIGNING_KEY}"})
    assert ok.status_code == 200
    assert (await client.get("/healthz")).status_code == 200


def test_serve_refuses_to_start_without_keys(app: tarry.Tarry) -> None:
    from tarry._server import create_app

    with pytest.raises(ValueError, match="TARRY_EVENT_KEYS"):
        create_app(app, mode="serve", event_keys=[], api_key="k")
    with pytest.raises(ValueError, match="TARRY_SIGNING_KEY"):
        create_app(app, mode="serve", event_keys=["a"], api_key=None)


# -- odd input never makes a 500 -----------------------------------------------------

ODD_BODIES = [
    b'{"name": "a", "data": {"n": ' + b"9" * 5000 + b"}}",  # an integer past Python's digit limit
    b"[" * 5000 + b"]" * 5000,  # nesting past the recursion limit
    b'{"name": "a\\ud800"}',  # a lone surrogate
    b'{"name": "a", "data": {"x": NaN}}',
    b'{"name": "a", "key": "k\\u0000"}',
    b"\xff\xfe{}",
]


@pytest.mark.parametrize("body", ODD_BODIES)
async def test_odd_json_is_400_on_every_route_that_reads_a_body(served: Served, body: bytes) -> None:
    app, client = served
    headers = {"content-type": "application/json"}
    response = await client.post("/e/k", content=body, headers=headers)
    assert response.status_code == 400 and response.json()["error"]
    notify = await client.post("/api/v1/notify/k", content=body, headers=headers)
    assert notify.status_code in (200, 400), "a body that is valid JSON but not an object of data is refused"
    _, path = await resume_url(app, client)
    resumed = await client.post(path, content=body, headers=headers)
    assert resumed.status_code in (200, 400)
    assert [e.event.name for e in await app.engine.store.list_events(None, 10)
            if e.event.name not in ("refund/requested", "tarry/notify")] == []  # fmt: skip


async def test_a_resume_body_over_the_limit_is_413(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client)
    huge = b'{"x": "' + b"y" * (6 * 1024 * 1024) + b'"}'
    response = await client.post(path, content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert (await app.get_run(run_id)).status == "waiting"


async def test_firefox_prefetch_never_consumes_a_token(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client)
    assert (await client.get(path, headers={"x-moz": "prefetch"})).status_code == 204
    assert (await app.get_run(run_id)).status == "waiting"


async def test_dev_posts_must_be_json(served: Served) -> None:
    app, client = served
    for target in ("/e/k", "/api/v1/events", "/api/v1/notify/k"):
        response = await client.post(target, content=b'{"name": "x"}', headers={"content-type": "text/plain"})
        assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert await app.engine.store.list_events(None, 10) == []


async def test_dev_refuses_other_hosts(app: tarry.Tarry) -> None:
    from tarry._server import create_app

    server = create_app(app, allowed_hosts=["127.0.0.1", "localhost"], manage=False)
    async with app:
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as client:
            assert (await client.get("/api/v1/runs")).status_code == 400
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8288") as client:
            assert (await client.get("/api/v1/runs")).status_code == 200
