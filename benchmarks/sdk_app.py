"""The apps of ``python -m benchmarks sdk``: one function, written twice, that waits for one event.

``app`` is a FastAPI app serving the function written with Inngest's Python
SDK (uvicorn serves it; in dev mode the SDK finds Tarry through
``INNGEST_DEV=<url>``); ``bench`` is the same function with Tarry's own API
(``tarry dev benchmarks.sdk_app:bench``). The step bodies are coroutine
functions on both sides (Tarry runs plain ones in a thread). Each resumed run's ``after`` step
notes ``time.time()`` and sends ``"<n> <time>"`` in a UDP datagram to
127.0.0.1:``BENCH_UDP_PORT`` (when set): the benchmark waits on that socket,
so it measures event -> resumed step without polling the server it measures.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from typing import Any, cast

import fastapi
import inngest
import inngest.fast_api

import tarry

HOUR = datetime.timedelta(hours=1)
_PORT = int(os.environ.get("BENCH_UDP_PORT") or 0)
_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def resumed(n: int) -> float:
    """The body of the ``after`` step: when it ran, told to the benchmark."""
    at = time.time()
    if _PORT:
        _udp.sendto(f"{n} {at!r}".encode(), ("127.0.0.1", _PORT))
    return at


client = inngest.Inngest(app_id="bench-sdk", is_production=False)


@client.create_function(fn_id="waiter", trigger=inngest.TriggerEvent(event="bench/start"))
async def sdk_waiter(ctx: inngest.Context) -> float:
    n = int(cast(int, ctx.event.data["n"]))

    async def before() -> int:
        return n

    async def after() -> float:
        return resumed(n)

    await ctx.step.run("before", before)
    await ctx.step.wait_for_event("wait", event="bench/go", if_exp="async.data.n == event.data.n", timeout=HOUR)
    return await ctx.step.run("after", after)


app = fastapi.FastAPI()
inngest.fast_api.serve(app, client, [sdk_waiter])


bench = tarry.Tarry("bench-tarry")


@bench.function(trigger="bench/start")
async def waiter(ctx: tarry.Context) -> Any:
    n: int = ctx.event.data["n"]

    async def before() -> int:
        return n

    async def after() -> float:
        return resumed(n)

    await ctx.step.run("before", before)
    await ctx.step.wait_for_event("wait", event="bench/go", if_exp="async.data.n == event.data.n", timeout=HOUR)
    return await ctx.step.run("after", after)
