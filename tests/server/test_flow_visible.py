"""Flow control seen through the HTTP API and /metrics: why a queued run waits, which functions skipped
an event, and the debounce bursts and batches still gathering events."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT

Client = tuple[tarry.Tarry, httpx.AsyncClient]


def define(app: tarry.Tarry, gate: asyncio.Event) -> None:
    @app.function(trigger="f/throttled", throttle=tarry.Throttle(limit=1, period="1h"))
    async def throttled(ctx: tarry.Context) -> str:
        return "done"

    @app.function(trigger="f/limited", concurrency=tarry.Concurrency(limit=1))
    async def limited(ctx: tarry.Context) -> str:
        async def through_the_gate() -> str:
            await gate.wait()
            return "through"

        result: str = await ctx.step.run("gate", through_the_gate)
        return result

    @app.function(trigger="f/rated", rate_limit=tarry.RateLimit(limit=1, period="1h"))
    async def rated(ctx: tarry.Context) -> str:
        return "done"

    @app.function(trigger="f/once", idempotency="event.data.id")
    async def once(ctx: tarry.Context) -> str:
        return "done"

    @app.function(trigger="f/single", singleton=tarry.Singleton())
    async def single(ctx: tarry.Context) -> str:
        await ctx.step.sleep("nap", "1d")
        return "done"

    @app.function(trigger="f/debounced", debounce=tarry.Debounce(period="1m", key="event.data.user"))
    async def debounced(ctx: tarry.Context) -> int:
        return len(ctx.events)

    @app.function(trigger="f/batched", batch=tarry.Batch(max_size=3, timeout="1h"))
    async def batched(ctx: tarry.Context) -> int:
        return len(ctx.events)


@pytest.fixture
async def client(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[Client]:
    gate = asyncio.Event()
    app = make_app(base_url="http://testserver")
    define(app, gate)
    app.gate = gate  # type: ignore[attr-defined]  # the test opens it
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http
        gate.set()


async def send(http: httpx.AsyncClient, name: str, **data: Any) -> str:
    response = await http.post("/e/k", json={"name": name, "data": data})
    assert response.status_code == 200, response.text
    event_id: str = response.json()["ids"][0]
    return event_id


async def runs_of(http: httpx.AsyncClient, function_id: str) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/runs", params={"function_id": function_id})
    assert response.status_code == 200
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text (None when it is not there)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return None if found is None else float(found[1])


async def test_a_run_held_by_a_throttle_says_so_in_the_list_and_in_its_own_view(client: Client) -> None:
    app, http = client
    await send(http, "f/throttled")
    await send(http, "f/throttled")
    await app.idle(timeout=LIMIT)
    held, first = await runs_of(http, "throttled")  # newest first
    assert first["status"] == "completed" and first["queued_reason"] is None
    assert held["status"] == "queued" and held["queued_reason"] == "throttle"
    one = (await http.get(f"/api/v1/runs/{held['id']}")).json()
    assert one["queued_reason"] == "throttle"
    metrics = (await http.get("/metrics")).text
    assert sample(metrics, "tarry_runs_queued", reason="throttle") == 1
    assert sample(metrics, "tarry_runs_queued", reason="concurrency") == 0
    clock = app.clock
    assert isinstance(clock, VirtualClock)
    await clock.advance("1h")  # the window allows it now
    one = (await http.get(f"/api/v1/runs/{held['id']}")).json()
    assert one["status"] == "completed" and one["queued_reason"] is None
    assert sample((await http.get("/metrics")).text, "tarry_runs_queued", reason="throttle") == 0


async def test_a_run_held_by_a_concurrency_limit_says_so(client: Client) -> None:
    app, http = client
    await send(http, "f/limited")
    await send(http, "f/limited")
    for _ in range(LIMIT * 20):  # the first run holds the one slot while it executes
        runs = await runs_of(http, "limited")
        if [r["status"] for r in runs] == ["queued", "running"] and runs[0]["queued_reason"] == "concurrency":
            break
        await asyncio.sleep(0.05)
    assert [(r["status"], r["queued_reason"]) for r in runs] == [("queued", "concurrency"), ("running", None)]
    assert sample((await http.get("/metrics")).text, "tarry_runs_queued", reason="concurrency") == 1
    app.gate.set()  # type: ignore[attr-defined]
    await app.idle(timeout=LIMIT)
    assert [(r["status"], r["queued_reason"]) for r in await runs_of(http, "limited")] == [("completed", None)] * 2


async def test_an_event_shows_which_functions_skipped_it_and_why(client: Client) -> None:
    app, http = client
    firsts = [await send(http, "f/rated"), await send(http, "f/once", id=7), await send(http, "f/single")]
    await app.idle(timeout=LIMIT)
    seconds = [await send(http, "f/rated"), await send(http, "f/once", id=7), await send(http, "f/single")]
    await app.idle(timeout=LIMIT)
    events = {e["id"]: e for e in (await http.get("/api/v1/events")).json()["events"]}
    for event_id in firsts:
        assert events[event_id]["skipped"] == [] and events[event_id]["runs_started"] == 1
    expected = [("rated", "rate_limit"), ("once", "idempotency"), ("single", "singleton")]
    for event_id, (function_id, reason) in zip(seconds, expected, strict=True):
        skipped = [{"function_id": function_id, "reason": reason}]
        assert events[event_id]["skipped"] == skipped and events[event_id]["runs_started"] == 0
        one = (await http.get(f"/api/v1/events/{event_id}")).json()
        assert one["id"] == event_id and one["skipped"] == skipped
        runs = (await http.get(f"/api/v1/events/{event_id}/runs")).json()
        assert runs["runs"] == [] and runs["event"]["skipped"] == skipped
    metrics = (await http.get("/metrics")).text
    for function_id, reason in expected:
        assert sample(metrics, "tarry_runs_skipped_total", function_id=function_id, reason=reason) == 1
    await send(http, "f/rated")
    await app.idle(timeout=LIMIT)
    metrics = (await http.get("/metrics")).text
    assert sample(metrics, "tarry_runs_skipped_total", function_id="rated", reason="rate_limit") == 2
    assert "# TYPE tarry_runs_skipped_total counter" in metrics or "# TYPE tarry_runs_skipped counter" in metrics


async def test_the_skip_count_comes_from_the_store_so_every_process_reports_it(
    client: Client, make_app: Callable[..., tarry.Tarry]
) -> None:
    app, http = client
    await send(http, "f/rated")
    await send(http, "f/rated")
    await app.idle(timeout=LIMIT)
    other = make_app()  # another process on the same store: it skipped nothing itself
    define(other, asyncio.Event())
    await other.start(worker=False)
    try:
        transport = httpx.ASGITransport(app=create_app(other, manage=False, worker=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
            metrics = (await elsewhere.get("/metrics")).text
    finally:
        await other.close()
    assert sample(metrics, "tarry_runs_skipped_total", function_id="rated", reason="rate_limit") == 1


async def test_open_bursts_and_batches_are_listed_until_their_runs_are_made(client: Client) -> None:
    app, http = client
    clock = app.clock
    assert isinstance(clock, VirtualClock)
    started = clock.now_ms()
    burst = [await send(http, "f/debounced", user="u1")]
    await clock.advance("10s")
    burst.append(await send(http, "f/debounced", user="u1"))
    await send(http, "f/batched", n=1)
    await send(http, "f/batched", n=2)
    await app.idle(timeout=LIMIT)
    assert await runs_of(http, "debounced") == [] and await runs_of(http, "batched") == []
    body = (await http.get("/api/v1/buffers")).json()
    assert body["next_cursor"] is None
    batch, debounce = body["buffers"]  # newest first
    assert {k: batch[k] for k in ("function_id", "kind", "partition", "size")} == {
        "function_id": "batched", "kind": "batch", "partition": None, "size": 2}  # fmt: skip
    assert {k: debounce[k] for k in ("function_id", "kind", "partition", "size")} == {
        "function_id": "debounced", "kind": "debounce", "partition": "u1", "size": 2}  # fmt: skip
    assert ms(debounce["first_at"]) == started and ms(debounce["last_at"]) == started + 10_000
    assert ms(debounce["due_at"]) == started + 70_000  # a minute after its last event
    assert ms(batch["due_at"]) == ms(batch["first_at"]) + 3_600_000
    only = (await http.get("/api/v1/buffers", params={"function_id": "debounced"})).json()["buffers"]
    assert [b["id"] for b in only] == [debounce["id"]]

    await clock.advance("1m")  # the burst's period passes: its run is made
    [run] = await runs_of(http, "debounced")
    assert run["event_count"] == 2 and "events" not in run  # lists leave a batch's events out
    one = (await http.get(f"/api/v1/runs/{run['id']}")).json()
    assert [e["id"] for e in one["events"]] == burst and one["event"]["id"] == burst[-1]
    assert one["output"] == 2
    await send(http, "f/batched", n=3)  # the batch is full
    await app.idle(timeout=LIMIT)
    assert (await http.get("/api/v1/buffers")).json()["buffers"] == []
    [run] = await runs_of(http, "batched")
    assert [e["data"]["n"] for e in (await http.get(f"/api/v1/runs/{run['id']}")).json()["events"]] == [1, 2, 3]


def ms(text: str) -> int:
    """Epoch milliseconds of an API time (ISO 8601, ``Z``)."""
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def test_buffers_are_paged_with_a_cursor_and_bad_pages_are_refused(client: Client) -> None:
    app, http = client
    for user in ("a", "b", "c"):
        await send(http, "f/debounced", user=user)
    await app.idle(timeout=LIMIT)
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = (await http.get("/api/v1/buffers", params=params)).json()
        seen += [b["partition"] for b in body["buffers"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["c", "b", "a"]
    for bad in ({"limit": "0"}, {"limit": "x"}, {"cursor": "x"}, {"cursor": "0"}, {"cursor": "9" * 19}):
        response = await http.get("/api/v1/buffers", params=bad)
        assert response.status_code == 400 and "error" in response.json(), bad
    assert (await http.get("/api/v1/events/no-such-event")).status_code == 404


async def test_the_buffer_and_event_routes_need_the_signing_key_in_serve(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()
    define(app, asyncio.Event())
    async with app:
        server = create_app(app, mode="serve", event_keys=["event-key-one-0001"], api_key="signing-key-s3cret",
                            manage=False)  # fmt: skip
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            event_id = (await http.post("/e/event-key-one-0001", json={"name": "f/rated"})).json()["ids"][0]
            for path in ("/api/v1/buffers", f"/api/v1/events/{event_id}"):
                assert (await http.get(path)).status_code == 401
                authorized = await http.get(path, headers={"Authorization": "Bearer signing-key-s3cret"})
                assert authorized.status_code == 200


async def test_the_openapi_document_describes_the_new_routes_and_fields(client: Client) -> None:
    _, http = client
    document = (await http.get("/openapi.json")).json()
    assert {"/api/v1/buffers", "/api/v1/events/{event_id}"} <= set(document["paths"])
    run = document["paths"]["/api/v1/runs/{run_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert {"queued_reason", "events"} <= set(run["schema"]["properties"])
