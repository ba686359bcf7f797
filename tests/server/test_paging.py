"""Every list of the JSON API pages with ``limit`` and ``cursor``: each row once across the pages,
``next_cursor`` null at the end, bad limits and cursors the server did not issue refused with 400;
the filters of ``GET /api/v1/runs``; and ``GET /api/v1/functions``."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT

Client = tuple[tarry.Tarry, httpx.AsyncClient]
JSON = {"content-type": "application/json"}


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="p/done")
    async def done(ctx: tarry.Context) -> int:
        return int(ctx.event.data.get("n", 0))

    @app.function(trigger="p/wait")
    async def waiter(ctx: tarry.Context) -> None:
        await ctx.step.wait_for_event("go", event="p/go", match="data.k", timeout="1d")

    for letter in "abc":  # one event starts three runs

        @app.function(trigger="p/fan", id=f"fan-{letter}")
        async def fan(ctx: tarry.Context) -> None:
            await ctx.step.sleep("nap", "1d")

    @app.function(trigger="p/burst", debounce=tarry.Debounce(period="1m", key="event.data.user"))
    async def burst(ctx: tarry.Context) -> None:
        return None


@pytest.fixture
async def client(make_app: Callable[..., tarry.Tarry], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    """An app holding at least three rows in every list: runs, events, waits, buffers, dead letters, functions."""
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        engine = app.engine
        route = engine.route

        def failing(name: str, exclude: str | None, only: str | None) -> list[str]:
            if name == "p/poison":
                raise RuntimeError("no route for p/poison")
            return route(name, exclude, only)

        monkeypatch.setattr(engine, "route", failing)
        clock = app.clock
        assert isinstance(clock, VirtualClock)
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for n in range(4):
                await send(http, "p/done", n=n)
                await send(http, "p/wait", k=n)
                await send(http, "p/burst", user=f"u{n}")
                await send(http, "p/poison", n=n)
                await app.idle(timeout=LIMIT)
                await clock.advance("1s")
            yield app, http


async def send(http: httpx.AsyncClient, name: str, **data: Any) -> str:
    response = await http.post("/e/key", json={"name": name, "data": data})
    assert response.status_code == 200, response.text
    event_id: str = response.json()["ids"][0]
    return event_id


async def every_page(http: httpx.AsyncClient, path: str, key: str, limit: int, **params: str) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        response = await http.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 200


LISTS = [
    ("/api/v1/runs", "runs", "id"),
    ("/api/v1/events", "events", "id"),
    ("/api/v1/waits", "waits", "run_id"),
    ("/api/v1/buffers", "buffers", "id"),
    ("/api/v1/dead-letters", "dead_letters", "id"),
    ("/api/v1/functions", "functions", "id"),
]


@pytest.mark.parametrize(("path", "key", "ident"), LISTS, ids=[k for _, k, _ in LISTS])
async def test_every_row_once_across_the_pages(client: Client, path: str, key: str, ident: str) -> None:
    _, http = client
    whole = (await http.get(path, params={"limit": "1000"})).json()
    assert whole["next_cursor"] is None
    everything = [row[ident] for row in whole[key]]
    assert len(everything) >= 3 and len(set(everything)) == len(everything)
    for limit in (1, 2, 3, len(everything) - 1, len(everything), len(everything) + 1):
        pages = every_page(http, path, key, limit)
        seen = [row[ident] for page in await pages for row in page]
        assert seen == everything, limit
        sizes = [len(page) for page in await every_page(http, path, key, limit)]
        assert all(size == limit for size in sizes[:-1]) and 1 <= sizes[-1] <= limit, (limit, sizes)


@pytest.mark.parametrize(("path", "key", "ident"), LISTS, ids=[k for _, k, _ in LISTS])
async def test_bad_limits_and_cursors_are_refused(client: Client, path: str, key: str, ident: str) -> None:
    _, http = client
    for limit in ("0", "1001", "x", "-1", "1.5", "", "\uff11"):  # the last: a full-width 1
        response = await http.get(path, params={"limit": limit})
        assert response.status_code == 400 and "invalid limit" in response.json()["error"], (limit, response.text)
    issued = (await http.get(path, params={"limit": "1"})).json()["next_cursor"]
    body, _, mac = issued.partition(".")
    decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged_body = base64.urlsafe_b64encode(json.dumps([decoded[0], "0"]).encode()).rstrip(b"=").decode()
    other_list = "/api/v1/functions" if path != "/api/v1/functions" else "/api/v1/runs"
    other = (await http.get(other_list, params={"limit": "1"})).json()["next_cursor"]
    flipped = issued[:-1] + ("A" if issued[-1] != "A" else "B")
    for cursor in ("x", "0", "9" * 19, "abc.def", ".", issued + "x", flipped, f"{forged_body}.{mac}", other, "é.é"):
        response = await http.get(path, params={"cursor": cursor})
        assert response.status_code == 400, (cursor, response.text)
        assert "invalid cursor" in response.json()["error"]
    assert (await http.get(path, params={"cursor": issued})).status_code == 200


async def test_a_cursor_of_another_app_is_refused(client: Client) -> None:
    _, http = client
    issued = (await http.get("/api/v1/runs", params={"limit": "1"})).json()["next_cursor"]
    stranger = tarry.Tarry("stranger", database_url="sqlite:///:memory:")
    stranger._signing_key = "another-signing-key"
    async with stranger:
        transport = httpx.ASGITransport(app=create_app(stranger, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            response = await other.get("/api/v1/runs", params={"cursor": issued})
    assert response.status_code == 400 and "invalid cursor" in response.json()["error"]


async def test_the_runs_an_event_started_and_resumed_are_paged_by_one_cursor(client: Client) -> None:
    app, http = client
    fan = await send(http, "p/fan")
    for _ in range(4):  # four more waiting runs, all resumed by one event below
        await send(http, "p/wait", k="shared")
    await app.idle(timeout=LIMIT)
    go = await send(http, "p/go", k="shared")
    await app.idle(timeout=LIMIT)
    whole = (await http.get(f"/api/v1/events/{fan}/runs", params={"limit": "1000"})).json()
    assert sorted(r["function_id"] for r in whole["runs"]) == ["fan-a", "fan-b", "fan-c"]
    assert whole["next_cursor"] is None and whole["resumed"] == []
    for limit in (1, 2, 3):
        pages = await every_page(http, f"/api/v1/events/{fan}/runs", "runs", limit)
        assert [r["id"] for page in pages for r in page] == [r["id"] for r in whole["runs"]]
    resumed = (await http.get(f"/api/v1/events/{go}/runs", params={"limit": "1000"})).json()["resumed"]
    assert len(resumed) == 4 and [r["id"] for r in resumed] == sorted((r["id"] for r in resumed), reverse=True)
    for limit in (1, 3, 4):
        pages = await every_page(http, f"/api/v1/events/{go}/runs", "resumed", limit)
        assert [r["id"] for page in pages for r in page] == [r["id"] for r in resumed], limit
        first = (await http.get(f"/api/v1/events/{go}/runs", params={"limit": str(limit)})).json()
        assert first["event"]["id"] == go and first["runs"] == []
    runs_cursor = (await http.get("/api/v1/runs", params={"limit": "1"})).json()["next_cursor"]
    refused = await http.get(f"/api/v1/events/{go}/runs", params={"cursor": runs_cursor})
    assert refused.status_code == 400 and "invalid cursor" in refused.json()["error"]
    assert (await http.get("/api/v1/events/nope/runs", params={"limit": "0"})).status_code == 400
    assert (await http.get("/api/v1/events/nope/runs")).status_code == 404


async def test_the_waits_of_one_run_are_paged_too(client: Client) -> None:
    _, http = client
    waits = (await http.get("/api/v1/waits")).json()["waits"]
    run_id = waits[0]["run_id"]
    mine = (await http.get("/api/v1/waits", params={"run_id": run_id, "limit": "1"})).json()
    assert [w["run_id"] for w in mine["waits"]] == [run_id] and mine["next_cursor"] is None


async def test_events_of_one_name_are_paged(client: Client) -> None:
    _, http = client
    pages = await every_page(http, "/api/v1/events", "events", 1, name="p/done")
    assert [e["data"]["n"] for page in pages for e in page] == [3, 2, 1, 0]


# -- the filters of GET /api/v1/runs --------------------------------------------------


async def runs(http: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/runs", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["runs"]
    return listed


async def test_the_runs_filters_alone_and_combined(client: Client) -> None:
    _, http = client
    everything = await runs(http)
    done = [r for r in everything if r["function_id"] == "done"]
    assert [r["output"] for r in done] == [3, 2, 1, 0]
    assert await runs(http, function="done") == done
    assert await runs(http, function_id="done") == done
    assert [r["function_id"] for r in await runs(http, status="waiting")] == ["waiter"] * 4
    both = await runs(http, status="waiting,completed")
    assert both == [r for r in everything if r["status"] in ("waiting", "completed")] and len(both) == 8
    assert await runs(http, status=["waiting", "completed"]) == both  # type: ignore[arg-type]
    assert await runs(http, function="done", status="waiting") == []
    event_id = done[1]["event"]["id"]
    assert [r["id"] for r in await runs(http, event_id=event_id)] == [done[1]["id"]]
    assert await runs(http, event_id=event_id, status="failed") == []
    second = done[2]["created_at"]  # the run of n=1
    assert [r["output"] for r in await runs(http, function="done", created_after=second)] == [3, 2, 1]
    assert [r["output"] for r in await runs(http, function="done", created_before=second)] == [0]
    third = done[1]["created_at"]
    bounded = await runs(http, created_after=second, created_before=third)
    assert {r["created_at"] for r in bounded} == {second} and len(bounded) == 2  # done and waiter of n=1
    west = datetime.fromisoformat(second).astimezone(timezone(timedelta(hours=-5))).isoformat()  # the same instant
    assert await runs(http, created_after=west, function="done") == done[:3]
    east = datetime.fromisoformat(second).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert await runs(http, created_after=east, created_before=third) == bounded
    a_microsecond_later = (datetime.fromisoformat(second) + timedelta(microseconds=1)).isoformat()
    assert [r["output"] for r in await runs(http, function="done", created_after=a_microsecond_later)] == [3, 2]
    pages = await every_page(http, "/api/v1/runs", "runs", 1, status="completed,waiting", created_after=second)
    assert [r["id"] for page in pages for r in page] == [r["id"] for r in both if r["created_at"] >= second]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"status": "done"}, "invalid status 'done'"),
        ({"status": "waiting,nope"}, "invalid status 'nope'"),
        ({"created_after": "2024-13-01T00:00:00Z"}, "invalid created_after"),
        ({"created_after": "yesterday"}, "invalid created_after 'yesterday'"),
        ({"created_before": "2024-05-01T09:00:00"}, "invalid created_before '2024-05-01T09:00:00': an ISO 8601 time"),
        ({"created_before": "2024-05-01"}, "invalid created_before"),
        ({"function": "a", "function_id": "b"}, "function and function_id name different functions"),
    ],
)
async def test_bad_run_filters_are_refused_naming_the_parameter(client: Client, params: dict[str, str],
                                                                 named: str) -> None:  # fmt: skip
    _, http = client
    response = await http.get("/api/v1/runs", params=params)
    assert response.status_code == 400 and named in response.json()["error"], response.text


# -- GET /api/v1/functions --------------------------------------------------------------


async def test_functions_say_their_triggers_retries_and_options(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()

    @app.function(trigger="shop/order.created")
    async def plain(ctx: tarry.Context) -> None: ...

    @app.function(trigger=["shop/a", "shop/b", "shop/*"], id="many", retries=0,
                  cancel_on=[tarry.CancelOn(event="shop/cancelled", match="data.id", timeout="1h")])  # fmt: skip
    def many(ctx: tarry.Context) -> None: ...

    @app.function(
        trigger="shop/limited",
        retries=2,
        concurrency=[tarry.Concurrency(limit=2, key="event.data.user"), tarry.Concurrency(5, key='"ai"', scope="app")],
        throttle=tarry.Throttle(limit=10, period=timedelta(minutes=1)),
        rate_limit=tarry.RateLimit(limit=1, period=30, key="event.data.user"),
        priority=tarry.Priority(run="event.data.vip ? 60 : 0"),
        idempotency="event.data.order",
        singleton=tarry.Singleton(mode="cancel"),
        timeouts=tarry.Timeouts(start="10m"),
    )
    async def limited(ctx: tarry.Context) -> None: ...

    @app.function(trigger="shop/burst", debounce=tarry.Debounce(period="5s", key="event.data.user", timeout="1m"))
    async def burst(ctx: tarry.Context) -> None: ...

    @app.function(trigger="shop/batch", batch=tarry.Batch(max_size=100, timeout="2s"))
    async def batched(ctx: tarry.Context) -> None: ...

    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            body = (await http.get("/api/v1/functions")).json()
    assert body["next_cursor"] is None
    by_id = {f["id"]: f for f in body["functions"]}
    assert list(by_id) == ["batched", "burst", "limited", "many", "plain"]  # by id
    assert by_id["plain"] == {"id": "plain", "triggers": [{"event": "shop/order.created"}], "retries": 4, "options": {}}
    assert by_id["many"] == {
        "id": "many", "retries": 0,
        "triggers": [{"event": "shop/a"}, {"event": "shop/b"}, {"event": "shop/*"}],
        "options": {"cancel_on": [{"event": "shop/cancelled", "match": "data.id", "if_exp": None, "timeout": "1h"}]},
    }  # fmt: skip
    assert by_id["limited"]["retries"] == 2
    assert by_id["limited"]["options"] == {
        "concurrency": [{"limit": 2, "key": "event.data.user", "scope": "function"},
                        {"limit": 5, "key": '"ai"', "scope": "app"}],
        "throttle": {"limit": 10, "period": 60.0, "key": None},
        "rate_limit": {"limit": 1, "period": 30, "key": "event.data.user"},
        "priority": {"run": "event.data.vip ? 60 : 0"},
        "idempotency": "event.data.order",
        "singleton": {"key": None, "mode": "cancel"},
        "timeouts": {"start": "10m", "finish": None},
    }  # fmt: skip
    assert by_id["burst"]["options"] == {"debounce": {"period": "5s", "key": "event.data.user", "timeout": "1m"}}
    assert by_id["batched"]["options"] == {"batch": {"max_size": 100, "timeout": "2s", "key": None}}


async def test_an_app_without_functions_lists_none(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/api/v1/functions")).json() == {"functions": [], "next_cursor": None}


async def test_the_openapi_document_says_every_list_is_paged(client: Client) -> None:
    _, http = client
    paths = (await http.get("/openapi.json")).json()["paths"]
    for path in [p for p, _, _ in LISTS] + ["/api/v1/events/{event_id}/runs"]:
        get = paths[path]["get"]
        assert {"limit", "cursor"} <= {p["name"] for p in get["parameters"]}, path
        page = get["responses"]["200"]["content"]["application/json"]["schema"]
        assert "next_cursor" in page["required"] and "400" in get["responses"], path
    runs = {p["name"] for p in paths["/api/v1/runs"]["get"]["parameters"]}
    assert {"function", "status", "event_id", "created_after", "created_before"} <= runs
