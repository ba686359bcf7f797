"""``GET /api/v1/stream`` (server-sent events) against a real uvicorn server on both stores: watched runs,
a run's detail, new runs and counts of a list, open waits, new events, the limit of open streams, and
bad input. Time is the app's VirtualClock; the stream itself polls in real time, so reads have deadlines.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import uvicorn

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run
from tests.server.conftest import EVENT_KEY_1, SIGNING_KEY, free_port

DEADLINE = 15.0  # seconds to wait for one message


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="shop/order.paid")
    async def fulfil(ctx: tarry.Context) -> Any:
        if ctx.event.data.get("hold"):
            await ctx.step.wait_for_event("hold", event="shop/release", match="data.order", timeout="1d")
        return await ctx.step.run("ship", lambda: "shipped")

    @app.function(trigger="shop/slow")
    async def slow(ctx: tarry.Context) -> Any:
        first = await ctx.step.run("one", lambda: 1)
        await ctx.step.sleep("nap", "1h")
        return first + await ctx.step.run("two", lambda: 2)


@pytest.fixture
async def live(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[tuple[tarry.Tarry, str]]:
    """An app and the URL of a real server of it (uvicorn on this test's event loop)."""
    app = make_app()
    define(app)
    async with app:
        port = free_port()
        config = uvicorn.Config(create_app(app, manage=False), host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=2)  # fmt: skip
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(LIMIT):
            while not server.started:
                await asyncio.sleep(0.01)
        try:
            yield app, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


class Feed:
    """The messages of one open stream, read one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()

    async def next(self) -> tuple[str, Any]:
        event, data = "message", list[str]()
        async with asyncio.timeout(DEADLINE):
            async for line in self.lines:
                if not line:
                    if data:
                        return event, json.loads("\n".join(data))
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
        raise AssertionError("the stream ended")

    async def until(self, wanted: Callable[[str, Any], bool]) -> tuple[str, Any]:
        """The first message ``wanted`` accepts (the others are skipped)."""
        while True:
            event, body = await self.next()
            if wanted(event, body):
                return event, body


async def open_feed(stack: AsyncExitStack, client: httpx.AsyncClient, url: str, **params: str) -> Feed:
    response = await stack.enter_async_context(client.stream("GET", url + "/api/v1/stream", params=params))
    assert response.status_code == 200, await response.aread()
    assert response.headers["content-type"].startswith("text/event-stream")
    return Feed(response)


def tamper(db_url: str, run_id: str) -> None:
    """Change a run behind the app's back (what no reader should see unless it reads the run again)."""
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE runs SET ended_at = ended_at + 1000 WHERE id = ?", (run_id,))
        return
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE runs SET ended_at = ended_at + 1000 WHERE id = %s", (run_id,))


async def hold(app: tarry.Tarry, order: str) -> tarry.Run:
    return await start_run(app, tarry.Event("shop/order.paid", {"hold": True, "order": order}))


async def release(app: tarry.Tarry, order: str) -> None:
    await app.send(tarry.Event("shop/release", {"order": order}))
    await app.idle(timeout=LIMIT)


async def test_a_watched_run_is_sent_as_it_changes_and_once_finished_no_more(
    live: tuple[tarry.Tarry, str], db_url: str
) -> None:
    app, url = live
    done = await start_run(app, tarry.Event("shop/order.paid", {}))
    first, second = await hold(app, "a"), await hold(app, "b")
    async with httpx.AsyncClient(timeout=DEADLINE) as client, AsyncExitStack() as stack:
        feed = await open_feed(stack, client, url, runs=",".join([done.id, first.id, second.id, "no-such-run"]))
        initial = {}
        for _ in range(3):
            event, body = await feed.next()
            assert event == "run" and "steps" not in body
            initial[body["id"]] = body["status"]
        assert initial == {done.id: "completed", first.id: "waiting", second.id: "waiting"}
        await release(app, "a")
        event, body = await feed.next()
        assert (event, body["id"], body["status"]) == ("run", first.id, "completed") and body["ended_at"]
        # the finished runs are not read again: a change to them is never sent, while the other's is
        tamper(db_url, done.id)
        tamper(db_url, first.id)
        await release(app, "b")
        event, body = await feed.next()
        assert (event, body["id"], body["status"]) == ("run", second.id, "completed")


async def test_detail_sends_the_run_view_at_once_and_as_its_steps_change(
    live: tuple[tarry.Tarry, str], clock: VirtualClock, db_url: str
) -> None:
    app, url = live
    run = await start_run(app, tarry.Event("shop/slow"))
    other = await hold(app, "c")
    async with httpx.AsyncClient(timeout=DEADLINE) as client, AsyncExitStack() as stack:
        feed = await open_feed(stack, client, url, detail=run.id)
        event, body = await feed.next()
        assert event == "detail" and body["id"] == run.id and body["status"] == "sleeping"
        assert [(s["id"], s["status"]) for s in body["steps"]] == [("one", "completed"), ("nap", "sleeping")]
        assert body["steps"][1]["wake_at"] and body["output_truncated"] is None and body["reruns"] == []
        assert all("child_run_id" in s and s["output_truncated"] is None for s in body["steps"])
        await clock.advance("1h")
        event, body = await feed.until(lambda e, b: b["status"] == "completed")
        assert event == "detail" and body["output"] == 3
        assert [(s["id"], s["status"]) for s in body["steps"]] == [("one", "completed"), ("nap", "completed"),
                                                                 ("two", "completed")]  # fmt: skip
    # once finished it is no longer read: a change to it is not sent, the watched run's is
    async with httpx.AsyncClient(timeout=DEADLINE) as client, AsyncExitStack() as stack:
        feed = await open_feed(stack, client, url, detail=run.id, runs=other.id)
        seen = {(await feed.next())[0], (await feed.next())[0]}
        assert seen == {"detail", "run"}
        tamper(db_url, run.id)
        await release(app, "c")
        event, body = await feed.next()
        assert (event, body["id"], body["status"]) == ("run", other.id, "completed")


async def test_a_list_gets_its_new_runs_newest_first_and_its_counts(live: tuple[tarry.Tarry, str]) -> None:
    app, url = live
    await hold(app, "old")
    async with httpx.AsyncClient(timeout=DEADLINE) as client, AsyncExitStack() as stack:
        feed = await open_feed(stack, client, url, list="1", function="fulfil", status="waiting")
        event, body = await feed.next()
        assert event == "counts" and body["counts"]["waiting"] == 1 and body["total"] == 1
        assert list(body["counts"]) == ["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"]
        await app.send(tarry.Event("shop/slow"))  # another function's: not in this list
        await app.send([tarry.Event("shop/order.paid", {"hold": True, "order": f"n{i}"}) for i in range(3)])
        await app.send(tarry.Event("shop/order.paid", {}))  # completes: not of the status
        await app.idle(timeout=LIMIT)
        listed: list[dict[str, Any]] = []
        while len(listed) < 3:
            event, body = await feed.until(lambda e, b: e == "new")
            listed.extend(body["runs"])
        assert [r["event"]["data"]["order"] for r in listed] == ["n2", "n1", "n0"]
        assert {r["function_id"] for r in listed} == {"fulfil"} and all("steps" not in r for r in listed)
        event, body = await feed.until(lambda e, b: e == "counts")
        assert body["counts"]["waiting"] == 4 and body["counts"]["completed"] == 1 and body["total"] == 5


async def test_a_burst_of_new_runs_comes_in_messages_of_at_most_50(live: tuple[tarry.Tarry, str]) -> None:
    app, url = live
    async with httpx.AsyncClient(timeout=DEADLINE) as client, AsyncExitStack() as stack:
        feed = await open_feed(stack, client, url, list="1")
        await feed.until(lambda e, b: e == "counts")
        await app.send([tarry.Event("shop/order.paid", {"hold": True, "order": f"b{i}"}) for i in range(120)])
        await app.idle(timeout=LIMIT)
        sizes: list[int] = []
        orders: list[str] = []
        while sum(sizes) < 120:
            _, body = await feed.until(lambda e, b: e == "new")
            sizes.append(len(body["runs"]))
            orders.extend(r["event"]["data"]["order"] for r in body["runs"])
        assert max(sizes) <= 50 and sorted(orders) == sorted(f"b{i}" for i in range(120))


async def test_a_run_that_reaches_the_lists_status_after_a_newer_one_is_still_sent(
    live: tuple[tarry.Tarry, str],
) -> None:  # fmt: skip
    app, url = live
    async with httpx.AsyncClient(timeout=DEADLINE) as client, AsyncExitStack() as stack:
        feed = await open_feed(stack, client, url, list="1", status="completed")
        await feed.until(lambda e, b: e == "counts")
        await hold(app, "late")  # created first, waiting
        await app.send(tarry.Event("shop/order.paid", {"order": "quick"}))  # created after it, completes at once
        await app.idle(timeout=LIMIT)
        _, body = await feed.until(lambda e, b: e == "new")
        assert [r["event"]["data"]["order"] for r in body["runs"]] == ["quick"]
        await release(app, "late")
        _, body = await feed.until(lambda e, b: e == "new")
        assert [(r["event"]["data"]["order"], r["status"]) for r in body["runs"]] == [("late", "completed")]


async def test_waits_and_events_are_sent_as_they_change(live: tuple[tarry.Tarry, str]) -> None:
    app, url = live
    await app.send(tarry.Event("shop/earlier"))
    async with httpx.AsyncClient(timeout=DEADLINE) as client, AsyncExitStack() as stack:
        feed = await open_feed(stack, client, url, waits="1", events="1")
        event, body = await feed.next()
        assert (event, body) == ("waits", {"waits": []})
        await hold(app, "w")
        event, body = await feed.until(lambda e, b: e == "waits")
        assert [(w["function_id"], w["step_id"]) for w in body["waits"]] == [("fulfil", "hold")]
        _, body = await feed.until(lambda e, b: e == "events")
        assert [e["name"] for e in body["events"]] == ["shop/order.paid"] and body["more"] is False
        await release(app, "w")
        _, body = await feed.until(lambda e, b: e == "waits")
        assert body["waits"] == []


async def test_at_most_100_streams_are_open_and_a_closed_one_frees_its_place(live: tuple[tarry.Tarry, str]) -> None:
    _, url = live
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=DEADLINE, limits=limits) as client:
        async with AsyncExitStack() as stack:
            for _ in range(100):  # each watches an unknown run: nothing to read after its first look
                await open_feed(stack, client, url, runs="no-such-run")
            refused = await client.get(url + "/api/v1/stream", params={"runs": "x"})
            assert refused.status_code == 503 and "100" in refused.json()["error"]
            assert (await client.get(url + "/api/v1/runs")).status_code == 200  # the rest still answers
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while True:  # the server sees the clients go, and gives their places back
            async with client.stream("GET", url + "/api/v1/stream", params={"runs": "x"}) as again:
                if again.status_code == 200:
                    break
            assert asyncio.get_running_loop().time() < deadline, "the closed streams' places were not freed"
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("params", "named"),
    [({}, "watches nothing"), ({"runs": ",".join(f"r{i}" for i in range(201))}, "runs"),
     ({"list": "yes"}, "list"), ({"waits": "2"}, "waits"), ({"events": "on"}, "events"),
     ({"list": "1", "status": "asleep"}, "status"), ({"list": "1", "created_after": "now"}, "created_after")],
)  # fmt: skip
async def test_bad_stream_parameters_are_refused(
    make_app: Callable[..., tarry.Tarry], params: dict[str, str], named: str
) -> None:
    app = make_app()
    async with app:
        transport = httpx.ASGITransport(app=create_app(app, manage=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/api/v1/stream", params=params)
            assert answer.status_code == 400 and named in answer.json()["error"]
            unknown = await client.get("/api/v1/stream", params={"detail": "no-such-run"})
            assert unknown.status_code == 404


async def test_in_serve_the_stream_needs_credentials(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()
    async with app:
        server = create_app(app, mode="serve", event_keys=[EVENT_KEY_1], api_key=SIGNING_KEY, manage=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://t") as client:
            assert (await client.get("/api/v1/stream", params={"waits": "1"})).status_code == 401
            wrong = {"authorization": "Bearer not-the-signing-key"}
            assert (await client.get("/api/v1/stream", params={"waits": "1"}, headers=wrong)).status_code == 401
            # with the key, a bad query is still refused before any stream opens
            right = {"authorization": f"Bearer {SIGNING_KEY}"}
            assert (await client.get("/api/v1/stream", headers=right)).status_code == 400
