"""What one request may cost: events per request, unknown resume tokens, slow and aborted bodies, nesting."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tarry
from tarry._server import create_app, routes
from tests.server.test_http import JSON, Served, resume_url

# -- events per request ------------------------------------------------------------


async def test_a_batch_at_the_event_limit_is_accepted(served: Served) -> None:
    _, client = served
    batch = [{"name": "a/b"}] * routes.MAX_EVENTS
    response = await client.post("/e/k", json=batch)
    assert response.status_code == 200 and len(response.json()["ids"]) == routes.MAX_EVENTS


async def test_a_batch_over_the_event_limit_is_413_naming_it_before_any_event_is_checked(served: Served) -> None:
    app, client = served
    batch: list[Any] = [{"name": "a/b"}] * routes.MAX_EVENTS + ["not an event"]  # the bad one is never looked at
    for path in ("/e/k", "/api/v1/events"):
        response = await client.post(path, json=batch)
        assert response.status_code == 413, path
        assert f"the limit is {routes.MAX_EVENTS}" in response.json()["error"]
    assert await app.engine.store.list_events(None, 10) == []


async def test_the_openapi_document_states_the_event_limit(served: Served) -> None:
    _, client = served
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"]["/e/{event_key}"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]
    assert schema["maxItems"] == routes.MAX_EVENTS and str(routes.MAX_EVENTS) in post["responses"]["413"]["description"]


async def test_a_large_batch_is_parsed_and_checked_off_the_event_loop(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client = served
    threads: list[int] = []
    checked = routes.events_of

    def events_of(body: bytes) -> list[tarry.Event]:
        threads.append(threading.get_ident())
        return checked(body)

    monkeypatch.setattr(routes, "events_of", events_of)
    small = await client.post("/e/k", json=[{"name": "a/b"}])
    batch = json.dumps([{"name": "a/b", "data": {"i": i}} for i in range(routes.MAX_EVENTS)]).encode()
    assert len(batch) > routes.OFF_LOOP
    large = await client.post("/e/k", content=batch, headers=JSON)
    assert small.status_code == large.status_code == 200
    assert threads[0] == threading.get_ident() != threads[1], "only the large body is handed to a thread"


# -- /resume/{token} reads no body for an unknown token ------------------------------


async def test_an_unknown_token_is_404_without_reading_the_body(served: Served) -> None:
    _, client = served
    read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal read
        while True:
            read += 1
            yield b"x" * 65536

    response = await client.post("/resume/no-such-token", content=endless(), headers=JSON)
    assert response.status_code == 404 and response.json()["ok"] is False
    assert read == 0


async def test_a_known_token_still_reads_its_body(served: Served) -> None:
    app, client = served
    run_id, path = await resume_url(app, client)
    assert (await client.post(path, json={"ok": 1})).status_code == 200
    assert (await app.wait_for_run(run_id, timeout=10)).status == "completed"


# -- slow and aborted bodies ------------------------------------------------------------


async def test_a_body_that_never_finishes_is_408(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = served
    monkeypatch.setattr(routes, "BODY_TIMEOUT", 0.2)

    async def stalls() -> AsyncIterator[bytes]:
        yield b'[{"name": "a/b"}'
        await asyncio.sleep(60)
        yield b"]"

    response = await client.post("/e/k", content=stalls(), headers=JSON)
    assert response.status_code == 408 and "0.2 seconds" in response.json()["error"]
    assert await app.engine.store.list_events(None, 10) == []


async def test_a_client_that_goes_away_mid_body_logs_no_traceback(
    app: tarry.Tarry, caplog: pytest.LogCaptureFixture
) -> None:
    server = create_app(app, manage=False)
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    for path in ("/e/k", "/api/v1/notify/k"):
        messages[:] = [{"type": "http.request", "body": b'{"name": "a/', "more_body": True},
                       {"type": "http.disconnect"}]  # fmt: skip
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
                 "scheme": "http", "server": ("testserver", 80), "client": ("1.2.3.4", 5), "root_path": ""}  # fmt: skip
        async with app:
            with caplog.at_level(logging.DEBUG):
                await server(scope, receive, send)  # type: ignore[arg-type]
    assert all(r.exc_info is None for r in caplog.records)
    assert len([r for r in caplog.records if "went away" in r.getMessage()]) == 2


# -- nesting ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [routes.MAX_DEPTH - 3, routes.MAX_DEPTH - 2, routes.MAX_DEPTH - 1, 940, 955, 956,
                                   957, 958, 959, 970, 100_000])  # fmt: skip
async def test_every_depth_of_nesting_is_a_200_or_a_400(served: Served, depth: int) -> None:
    app, client = served
    nested = b"[" * depth + b"]" * depth
    event = b'{"name": "a/b", "data": {"x": ' + nested + b"}}"  # two levels more than `nested`
    response = await client.post("/e/k", content=event, headers=JSON)
    expected = 200 if depth + 2 <= routes.MAX_DEPTH else 400
    assert response.status_code == expected, response.text
    if expected == 400:
        assert f"more than {routes.MAX_DEPTH} levels" in response.json()["error"] or "too deeply" in response.text
    notify = await client.post("/api/v1/notify/k", content=b'{"x": ' + nested + b"}", headers=JSON)
    assert notify.status_code == (200 if depth + 1 <= routes.MAX_DEPTH else 400)
    _, path = await resume_url(app, client)
    resumed = await client.post(path, content=b'{"x": ' + nested + b"}", headers=JSON)
    assert resumed.status_code == (200 if depth + 1 <= routes.MAX_DEPTH else 400)


def test_the_depth_limit_itself() -> None:
    assert routes.parse(b"[" * routes.MAX_DEPTH + b"]" * routes.MAX_DEPTH) is not None
    with pytest.raises(ValueError, match=f"more than {routes.MAX_DEPTH} levels"):
        routes.parse(b"[" * (routes.MAX_DEPTH + 1) + b"]" * (routes.MAX_DEPTH + 1))


async def test_no_depth_near_the_parsers_own_limit_is_a_500(served: Served) -> None:
    """The depths where parsing succeeded but encoding again failed depend on the stack: sweep them all."""
    _, client = served
    statuses = set()
    for depth in range(500, 1001):
        body = b'{"name": "a/b", "data": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
        statuses.add((await client.post("/e/k", content=body, headers=JSON)).status_code)
    assert statuses == {400}
