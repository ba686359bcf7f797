"""HTTP on a real ``tarry dev`` server: keep-alive request latency, and what a /metrics scrape costs.

One ``httpx.Client`` (one keep-alive connection) sends ``GET /healthz`` and
``POST /e/{key}`` in turn; then the store holds ``runs`` waiting runs and
``/metrics`` is scraped, beside the row counts that scrapes used to make.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

import tarry
from benchmarks.common import fresh_url, percentiles, temp_folder

APP = str(Path(__file__).resolve().parents[1] / "examples" / "onboarding.py") + ":app"
BATCH = 5000  # events per request when filling the store (the server's limit)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(url: str, port: int, folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TARRY_DATABASE_URL": url}
    process = subprocess.Popen([sys.executable, "-c", "from tarry._cli import main; main()", "dev", APP, "--port", str(port)], cwd=folder,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("tarry dev did not start")


def _timed(client: httpx.Client, requests: int, send: Any) -> dict[str, float]:
    samples = []
    for i in range(requests):
        start = time.perf_counter()
        response = send(client, i)
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return percentiles(samples)


def _scrape_cost(url: str, client: httpx.Client, scrapes: int) -> dict[str, Any]:
    scraped = _timed(client, scrapes, lambda c, i: c.get("/metrics"))

    async def count_rows() -> dict[str, float]:  # what each scrape did before the counters
        app = tarry.Tarry("bench", database_url=url)
        await app.start(worker=False)
        store: Any = app.engine.store
        try:
            samples = []
            for _ in range(scrapes):
                start = time.perf_counter()
                await store._read(lambda c: (store._x(c, "count_runs_by_status").fetchall(),
                                             store._x(c, "count_waits").fetchone()))  # fmt: skip
                samples.append((time.perf_counter() - start) * 1000)
            return percentiles(samples)
        finally:
            await app.close()

    return {"metrics_scrape_ms": scraped, "rows_counted_ms": asyncio.run(count_rows())}


def run(requests: int = 500, runs: int = 20_000, scrapes: int = 50) -> dict[str, Any]:
    folder = temp_folder()
    url = fresh_url(folder, "http")
    port = _free_port()
    process = _start(url, port, folder)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            healthz = _timed(client, requests, lambda c, i: c.get("/healthz"))
            events = _timed(
                client, requests, lambda c, i: c.post("/e/k", json={"name": "bench/ping", "data": {"i": i}})
            )
            for start in range(0, runs, BATCH):
                batch = [{"name": "app/account.created", "data": {"userId": f"u{n}"}}
                         for n in range(start, min(runs, start + BATCH))]  # fmt: skip
                client.post("/e/k", json=batch).raise_for_status()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:  # until every run waits
                text = client.get("/metrics").text
                if f'tarry_runs{{status="waiting"}} {float(runs)}' in text:
                    break
                time.sleep(0.5)
            cost = _scrape_cost(url, client, scrapes)
    finally:
        process.terminate()
        process.wait(10)
    result = {"requests": requests, "healthz_ms": healthz, "post_event_ms": events, "waiting_runs": runs, **cost}
    print(f"  keep-alive GET /healthz   p50 {healthz['p50']:.2f} ms  p99 {healthz['p99']:.2f} ms ({requests})")
    print(f"  keep-alive POST /e/k      p50 {events['p50']:.2f} ms  p99 {events['p99']:.2f} ms ({requests})")
    print(f"  GET /metrics, {runs} runs  p50 {cost['metrics_scrape_ms']['p50']:.2f} ms"
          f"  (counting the rows instead: p50 {cost['rows_counted_ms']['p50']:.2f} ms)")  # fmt: skip
    return result
