"""A FastAPI app serving functions written with Inngest's Python SDK, unchanged, for Tarry to run.

Served by uvicorn in a subprocess (tests/sdk/conftest.py). In dev mode the SDK
finds Tarry through ``INNGEST_DEV=<url>``; with ``SDK_MODE=cloud`` it runs as
in production, signing with ``INNGEST_SIGNING_KEY`` and syncing to
``INNGEST_API_BASE_URL``. ``GET /calls`` tells how often each step body ran,
by the event's ``id`` field and the step.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import threading
import time
from collections import Counter
from typing import Any

import fastapi
import inngest
import inngest.fast_api
from inngest.experimental.ai import openai

production = os.environ.get("SDK_MODE") == "cloud"
client = inngest.Inngest(app_id=os.environ.get("SDK_APP_ID", "shop"), is_production=production)
bad = inngest.Inngest(app_id="bad", is_production=production)

calls: Counter[str] = Counter()
lock = threading.Lock()


def ran(ctx: inngest.Context, step: str) -> int:
    """Count one run of a step body; how many there were for this event and step."""
    with lock:
        calls[f"{ctx.event.data.get('id')}/{step}"] += 1
        return calls[f"{ctx.event.data.get('id')}/{step}"]


@client.create_function(fn_id="retry", trigger=inngest.TriggerEvent(event="sdk/retry"), retries=2)
async def retry(ctx: inngest.Context) -> dict[str, Any]:
    def flaky() -> int:
        if ran(ctx, "flaky") == 1:
            raise ValueError("the first attempt fails")
        return ctx.attempt

    attempt = await ctx.step.run("flaky", flaky)

    def never() -> None:
        raise ValueError(f"attempt {ran(ctx, 'never')} fails too")

    try:
        await ctx.step.run("never", never)
    except inngest.StepError as exc:
        return {"attempt": attempt, "caught": exc.message}
    return {"attempt": attempt, "caught": None}


@client.create_function(fn_id="hopeless", trigger=inngest.TriggerEvent(event="sdk/hopeless"), retries=3)
async def hopeless(ctx: inngest.Context) -> None:
    def boom() -> None:
        ran(ctx, "boom")
        raise inngest.NonRetriableError("no point in trying again")

    await ctx.step.run("boom", boom)


@client.create_function(fn_id="sleeper", trigger=inngest.TriggerEvent(event="sdk/sleep"))
async def sleeper(ctx: inngest.Context) -> float:
    start = await ctx.step.run("start", time.time)
    await ctx.step.sleep("nap", datetime.timedelta(seconds=1))
    return await ctx.step.run("end", time.time) - start


@client.create_function(fn_id="waiter", trigger=inngest.TriggerEvent(event="sdk/order"))
async def waiter(ctx: inngest.Context) -> dict[str, Any] | None:
    async def slow() -> str:  # the payment may be sent while this runs: the wait below still sees it
        await asyncio.sleep(float(ctx.event.data.get("slow", 0)))
        return "reserved"

    await ctx.step.run("reserve", slow)
    paid = await ctx.step.wait_for_event(
        "payment", event="sdk/paid", if_exp="async.data.order == event.data.order",
        timeout=datetime.timedelta(seconds=float(ctx.event.data.get("timeout", 30))),
    )  # fmt: skip
    return None if paid is None else paid.data


@client.create_function(fn_id="parallel", trigger=inngest.TriggerEvent(event="sdk/parallel"))
async def parallel(ctx: inngest.Context) -> list[Any]:
    def part(name: str) -> str:
        ran(ctx, name)
        return name.upper()

    results = await ctx.group.parallel((
        lambda: ctx.step.run("a", part, "a"),
        lambda: ctx.step.run("b", part, "b"),
        lambda: ctx.step.run("c", part, "c"),
    ))  # fmt: skip
    return list(results)


@client.create_function(fn_id="child", trigger=inngest.TriggerEvent(event="sdk/child"))
async def child(ctx: inngest.Context) -> dict[str, Any]:
    return {"doubled": ctx.event.data["n"] * 2, "event": ctx.event.name}


@client.create_function(fn_id="parent", trigger=inngest.TriggerEvent(event="sdk/parent"))
async def parent(ctx: inngest.Context) -> Any:
    return await ctx.step.invoke("call-child", function=child, data={"n": ctx.event.data["n"]})


@client.create_function(fn_id="sender", trigger=inngest.TriggerEvent(event="sdk/send"))
async def sender(ctx: inngest.Context) -> list[str]:
    return await ctx.step.send_event("announce", inngest.Event(name="sdk/announced",
                                                               data={"id": ctx.event.data["id"]}))  # fmt: skip


@client.create_function(fn_id="listener", trigger=inngest.TriggerEvent(event="sdk/announced"))
async def listener(ctx: inngest.Context) -> str:
    return f"heard {ctx.event.data['id']}"


@client.create_function(
    fn_id="cancellable", trigger=inngest.TriggerEvent(event="sdk/long"),
    cancel=[inngest.Cancel(event="sdk/stop", if_exp="async.data.id == event.data.id")],
)  # fmt: skip
async def cancellable(ctx: inngest.Context) -> str:
    await ctx.step.sleep("long-nap", datetime.timedelta(hours=1))
    return "woke"


async def cleanup(ctx: inngest.Context) -> dict[str, Any]:
    error = ctx.event.data["error"]
    return {"failed": ctx.event.data["function_id"], "error": error["message"], "event": ctx.event.name,
            "stack": "Traceback" in error["stack"]}  # fmt: skip


@client.create_function(fn_id="fragile", trigger=inngest.TriggerEvent(event="sdk/fragile"), retries=0,
                        on_failure=cleanup)  # fmt: skip
async def fragile(ctx: inngest.Context) -> None:
    raise ValueError(f"fragile {ctx.event.data['id']} broke")


@client.create_function(fn_id="one-at-a-time", trigger=inngest.TriggerEvent(event="sdk/serial"),
                        concurrency=[inngest.Concurrency(limit=1)])  # fmt: skip
async def one_at_a_time(ctx: inngest.Context) -> list[float]:
    async def work() -> list[float]:
        start = time.time()
        await asyncio.sleep(0.3)
        return [start, time.time()]

    return await ctx.step.run("work", work)


@client.create_function(fn_id="slow", trigger=inngest.TriggerEvent(event="sdk/slow"), retries=0)
async def slow(ctx: inngest.Context) -> str:
    async def crawl() -> str:
        await asyncio.sleep(float(ctx.event.data["seconds"]))
        return "done"

    return await ctx.step.run("crawl", crawl)


@client.create_function(fn_id="steps", trigger=inngest.TriggerEvent(event="sdk/steps"))
async def steps(ctx: inngest.Context) -> int:
    total = 0
    for name in ("one", "two", "three"):
        total += await ctx.step.run(name, lambda name=name: ran(ctx, name))
    return total


@client.create_function(fn_id="later", trigger=inngest.TriggerEvent(event="sdk/later"))
async def later(ctx: inngest.Context) -> int:
    def not_yet() -> int:
        attempt = ran(ctx, "not-yet")
        if attempt == 1:
            raise inngest.RetryAfterError("not yet", retry_after=datetime.timedelta(seconds=1))
        return attempt

    return await ctx.step.run("not-yet", not_yet)


@client.create_function(fn_id="thinker", trigger=inngest.TriggerEvent(event="sdk/think"))
async def thinker(ctx: inngest.Context) -> object:
    adapter = openai.Adapter(auth_key="sk-none", model="gpt-none")
    return await ctx.step.ai.infer("ask", adapter=adapter, body={"messages": [{"role": "user", "content": "hi"}]})


@client.create_function(fn_id="mixed", trigger=inngest.TriggerEvent(event="sdk/mixed"))
async def mixed(ctx: inngest.Context) -> Any:
    return await ctx.step.invoke_by_id("bill", app_id="local", function_id="billing", data={"n": 4})


@client.create_function(
    fn_id="vip-only", trigger=inngest.TriggerEvent(event="sdk/visit", expression="event.data.vip == true")
)
async def vip_only(ctx: inngest.Context) -> str:
    return f"welcome {ctx.event.data['name']}"


@bad.create_function(fn_id="bursty", trigger=inngest.TriggerEvent(event="bad/go"),
                     throttle=inngest.Throttle(limit=1, period=datetime.timedelta(seconds=10), burst=3))  # fmt: skip
async def bursty(ctx: inngest.Context) -> None:
    return None


@client.create_function(fn_id="extra", trigger=inngest.TriggerEvent(event="sdk/extra"))
async def extra(ctx: inngest.Context) -> str:
    return "added after a reload"


app = fastapi.FastAPI()
inngest.fast_api.serve(app, client, [*([extra] if os.environ.get("SDK_EXTRA") else []), retry, hopeless, sleeper, waiter, parallel, child, parent, sender, listener,
                                     cancellable, fragile, one_at_a_time, slow, steps, later, thinker, mixed, vip_only])  # fmt: skip
inngest.fast_api.serve(app, bad, [bursty], serve_path="/api/bad")


@app.get("/calls")
def get_calls() -> dict[str, int]:
    with lock:
        return dict(calls)
