"""The rerun and bulk routes of §12: ``POST /api/v1/runs/{id}/rerun``, ``/api/v1/runs/cancel`` and
``/api/v1/runs/rerun``, their answers, their errors, and their guard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tests.conftest import LIMIT, start_run
from tests.server.conftest import EVENT_KEY_1, SIGNING_KEY

BEARER = {"authorization": f"Bearer {SIGNING_KEY}"}
Client = tuple[tarry.Tarry, httpx.AsyncClient, dict[str, str]]


class Switch:
    def __init__(self) -> None:
        self.broken = True

    def __call__(self) -> str:
        if self.broken:
            raise tarry.NonRetriableError("down")
        return "ok"


SHIP = Switch()


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="shop/order.paid")
    async def fulfil(ctx: tarry.Context) -> Any:
        if ctx.event.data.get("wait"):
            await ctx.step.wait_for_event("hold", event="shop/release", timeout="1d")
        charge = await ctx.step.run("charge", lambda: "ch_1")
        return [charge, await ctx.step.run("ship", SHIP)]


@pytest.fixture(params=["dev", "serve"])
async def served(request: pytest.FixtureRequest, make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[Client]:
    """(app, client, credentials) in dev and in serve."""
    SHIP.broken = True
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        if request.param == "dev":
            server, auth = create_app(app, manage=False), {}
        else:
            server = create_app(app, mode="serve", event_keys=[EVENT_KEY_1], api_key=SIGNING_KEY, manage=False)
            auth = BEARER
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://testserver") as c:
            yield app, c, auth


async def failed_run(app: tarry.Tarry, **data: Any) -> tarry.Run:
    run = await start_run(app, tarry.Event("shop/order.paid", data))
    return await app.wait_for_run(run.id, timeout=LIMIT)


async def test_rerun_answers_the_new_run_id_with_or_without_a_body(served: Client) -> None:
    app, client, auth = served
    run = await failed_run(app)
    SHIP.broken = False
    whole = await client.post(f"/api/v1/runs/{run.id}/rerun", headers={**auth, "content-type": "application/json"})
    assert whole.status_code == 200, whole.text
    from_ship = await client.post(f"/api/v1/runs/{run.id}/rerun", json={"from_step": "ship"}, headers=auth)
    assert from_ship.status_code == 200, from_ship.text
    null_step = await client.post(f"/api/v1/runs/{run.id}/rerun", json={"from_step": None}, headers=auth)
    assert null_step.status_code == 200, null_step.text
    for answer in (whole, from_ship, null_step):
        done = await app.wait_for_run(answer.json()["run_id"], timeout=LIMIT)
        assert done.output == ["ch_1", "ok"] and done.rerun_of == run.id
    shown = await client.get(f"/api/v1/runs/{from_ship.json()['run_id']}", headers=auth)
    assert shown.json()["rerun_of"] == run.id
    assert (await client.get(f"/api/v1/runs/{run.id}", headers=auth)).json()["rerun_of"] is None


async def count(app: tarry.Tarry) -> int:
    return len(await app.list_runs(limit=1000))


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        ({"from_step": "nope"}, 400, "invalid from_step 'nope'"),
        ({"from_step": 3}, 400, "invalid from_step 3"),
        ({"from_step": ""}, 400, "invalid from_step ''"),
        ({"step": "ship"}, 400, "unknown field(s) 'step'"),
        (["ship"], 400, "must be a JSON object"),
    ],
)
async def test_a_bad_rerun_body_is_400_and_starts_nothing(served: Client, body: Any, status: int, problem: str) -> None:
    app, client, auth = served
    run = await failed_run(app)
    before = await count(app)
    response = await client.post(f"/api/v1/runs/{run.id}/rerun", json=body, headers=auth)
    assert response.status_code == status and problem in response.json()["error"], response.text
    assert await count(app) == before


async def test_rerun_of_an_unknown_run_is_404_and_of_an_unfinished_run_400(served: Client) -> None:
    app, client, auth = served
    unknown = await client.post("/api/v1/runs/nope/rerun", json={}, headers=auth)
    assert unknown.status_code == 404 and unknown.json() == {"error": "no such run"}
    waiting = await start_run(app, tarry.Event("shop/order.paid", {"wait": True}))
    before = await count(app)
    response = await client.post(f"/api/v1/runs/{waiting.id}/rerun", json={}, headers=auth)
    assert response.status_code == 400 and "is waiting: only a finished run" in response.json()["error"]
    malformed = await client.post(f"/api/v1/runs/{waiting.id}/rerun", content=b"{oops",
                                  headers={**auth, "content-type": "application/json"})  # fmt: skip
    assert malformed.status_code == 400
    assert await count(app) == before


async def test_the_routes_need_the_key_in_serve_and_refuse_another_origin(served: Client) -> None:
    app, client, auth = served
    run = await failed_run(app)
    before = await count(app)
    paths = [f"/api/v1/runs/{run.id}/rerun", "/api/v1/runs/cancel", "/api/v1/runs/rerun"]
    for path in paths:
        foreign = await client.post(
            path, json={"function_id": "fulfil"}, headers={**auth, "origin": "http://evil.example"}
        )
        assert foreign.status_code == 403, path
        if auth:
            assert (await client.post(path, json={"function_id": "fulfil"})).status_code == 401, path
            wrong = await client.post(path, json={}, headers={"authorization": "Bearer wrong-key-0000000000"})
            assert wrong.status_code == 401, path
    assert await count(app) == before


# -- bulk -------------------------------------------------------------------------------------


async def test_bulk_cancel_and_rerun_take_the_filters_as_json(served: Client) -> None:
    app, client, auth = served
    since = app.clock.now()
    failed = await failed_run(app, plan="free")
    await failed_run(app, plan="pro")
    waiting = await start_run(app, tarry.Event("shop/order.paid", {"wait": True, "plan": "free"}))
    SHIP.broken = False
    rerun = await client.post("/api/v1/runs/rerun", headers=auth, json={
        "function_id": "fulfil", "if_exp": "event.data.plan == 'free'", "created_after": since.isoformat()})  # fmt: skip
    assert rerun.status_code == 200, rerun.text
    [new_id] = rerun.json()["run_ids"]
    assert (await app.wait_for_run(new_id, timeout=LIMIT)).rerun_of == failed.id
    cancel = await client.post("/api/v1/runs/cancel", headers=auth, json={
        "function_id": "fulfil", "created_before": "9999-01-01T00:00:00+02:00"})  # fmt: skip
    assert cancel.status_code == 200 and cancel.json() == {"cancelled": 1}, cancel.text
    done = await app.get_run(waiting.id)
    assert done is not None and done.status == "cancelled"
    again = await client.post("/api/v1/runs/rerun", headers=auth, json={"status": "cancelled", "function_id": "fulfil"})
    assert again.status_code == 200 and len(again.json()["run_ids"]) == 1


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        ("/api/v1/runs/cancel", {}, "needs at least one filter"),
        ("/api/v1/runs/cancel", None, "needs at least one filter"),
        ("/api/v1/runs/cancel", {"created_after": "2026-01-01T00:00:00"}, "invalid created_after"),
        ("/api/v1/runs/cancel", {"created_before": "yesterday"}, "invalid created_before"),
        ("/api/v1/runs/cancel", {"created_before": 1767225600000}, "invalid created_before"),
        ("/api/v1/runs/cancel", {"function_id": 7}, "invalid function_id 7"),
        ("/api/v1/runs/cancel", {"if_exp": "event.data =="}, "if_exp"),
        ("/api/v1/runs/cancel", {"function_id": "fulfil", "status": "failed"}, "unknown field(s) 'status'"),
        ("/api/v1/runs/cancel", ["fulfil"], "must be a JSON object"),
        ("/api/v1/runs/rerun", {"function_id": "fulfil", "status": "queued"}, "invalid status 'queued'"),
        ("/api/v1/runs/rerun", {"function_id": "fulfil", "status": None}, "invalid status None"),
        ("/api/v1/runs/rerun", {"function": "fulfil"}, "unknown field(s) 'function'"),
    ],
)
async def test_a_bad_bulk_filter_is_400_and_changes_nothing(served: Client, path: str, body: Any, problem: str) -> None:
    app, client, auth = served
    await failed_run(app)
    waiting = await start_run(app, tarry.Event("shop/order.paid", {"wait": True}))
    before = await app.list_runs(limit=1000)
    if body is None:
        response = await client.post(path, headers={**auth, "content-type": "application/json"})
    else:
        response = await client.post(path, json=body, headers=auth)
    assert response.status_code == 400 and problem in response.json()["error"], response.text
    assert await app.list_runs(limit=1000) == before
    assert (await app.get_run(waiting.id)) is not None
