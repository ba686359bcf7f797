"""The console under live updates: a real ``tarry dev`` (SQLite), Chromium on the runs view and on a run's
page, while ``rate`` runs change state per second for ``seconds`` (half start and wait, half are released
and complete), and someone types into the runs view's search box ten keys a second.

Measured, never asserted: the input latency (a key's ``keydown`` timestamp to the frame after it: a
``setTimeout`` queued from the next ``requestAnimationFrame``, i.e. once the character is painted), p50 and
p99; the pages' long tasks (``PerformanceObserver`` ``longtask``, over 50 ms); the server process's CPU
time over the same churn without the pages and with them (the difference is what the streams cost); the
stream messages the pages received; and the rate of changes reached.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import fresh_url, percentiles, temp_folder

APP = str(Path(__file__).with_name("console_app.py")) + ":app"
CHROMIUM = "/usr/bin/chromium"
TICK = 0.1  # s: the churn sends its events in ten slices a second

# installed in each page before its own script: latency marks, long tasks, stream messages
MEASURE = """
window.__latency = []; window.__longTasks = []; window.__messages = 0;
new PerformanceObserver(list => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); })
  .observe({type: "longtask", buffered: true});
document.addEventListener("keydown", event => {
  const down = event.timeStamp;
  requestAnimationFrame(() => setTimeout(() => window.__latency.push(performance.now() - down), 0));
}, true);
if (window.EventSource) {
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    constructor(url, options) {
      super(url, options);
      for (const type of ["message", "run", "detail", "new", "counts", "waits", "events"]) {
        this.addEventListener(type, () => { window.__messages += 1; });
      }
    }
  };
}
"""


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Churn:
    """Runs changing state at ``rate`` a second, from a thread: half new runs that wait, half releases of
    the oldest waiting ones (each completes its run)."""

    def __init__(self, url: str, rate: int, first_new: int) -> None:
        self.url, self.rate = url, rate
        self.next_new, self.next_release = first_new, 0
        self.sent = 0

    def run_for(self, seconds: float) -> None:
        thread = threading.Thread(target=lambda: asyncio.run(self._loop(seconds)))
        thread.start()
        self.thread = thread

    def join(self) -> None:
        self.thread.join()

    async def _loop(self, seconds: float) -> None:
        per_tick = max(1, round(self.rate * TICK / 2))
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            start = time.monotonic()
            tick = 0
            while time.monotonic() - start < seconds:
                new = [{"name": "bench/hold", "data": {"n": self.next_new + i}} for i in range(per_tick)]
                released = [{"name": "bench/release", "data": {"n": self.next_release + i}} for i in range(per_tick)]
                self.next_new += per_tick
                self.next_release += per_tick
                (await client.post("/e/bench", json=new + released)).raise_for_status()
                self.sent += 2 * per_tick
                tick += 1
                await asyncio.sleep(max(0.0, start + tick * TICK - time.monotonic()))


def _runs(client: httpx.Client, status: str) -> int:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'tarry_runs{{status="{status}"}}'):
            return int(float(line.split()[-1]))
    return 0


def _until(probe: Any, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def run(seconds: int = 30, rate: int = 200, waiting: int = 600) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    folder = temp_folder()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
    env["TARRY_DATABASE_URL"] = fresh_url(folder, "console")
    process = subprocess.Popen([sys.executable, "-c", "from tarry._cli import main; main()", "dev", APP, "--port",
                                str(port)], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            _until(lambda: _answers(client), "tarry dev to answer", 30)
            client.post("/e/bench", json={"name": "bench/nap", "data": {}}).raise_for_status()
            for start in range(0, waiting, 1000):
                batch = [{"name": "bench/hold", "data": {"n": n}} for n in range(start, min(waiting, start + 1000))]
                client.post("/e/bench", json=batch).raise_for_status()
            _until(lambda: _runs(client, "waiting") >= waiting and _runs(client, "sleeping") == 1, "the runs to wait")
            [napping] = client.get("/api/v1/runs", params={"function": "nap"}).json()["runs"]
            churn = Churn(url, rate, waiting)

            cpu = _cpu_seconds(process.pid)  # the churn alone
            churn.run_for(seconds)
            churn.join()
            without_pages = _cpu_seconds(process.pid) - cpu
            baseline_sent = churn.sent

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_init_script(MEASURE)
                runs_page, run_page = context.new_page(), context.new_page()
                run_page.goto(f"{url}/#/runs/{napping['id']}")
                runs_page.goto(url + "/")
                for page in (runs_page, run_page):
                    page.wait_for_selector("#live[data-state=live]", timeout=30_000)
                runs_page.bring_to_front()  # a page behind another gets its frames throttled
                search = runs_page.locator('form#run-filters input[name="q"]')
                search.click()
                runs_page.evaluate("window.__latency = []; window.__longTasks = []; window.__messages = 0")
                run_page.evaluate("window.__longTasks = []; window.__messages = 0")
                completed_before = _runs(client, "completed")
                cpu = _cpu_seconds(process.pid)
                churn.sent = 0
                churn.run_for(seconds)
                typed, keys = _type(runs_page, seconds)
                churn.join()
                with_pages = _cpu_seconds(process.pid) - cpu
                completed = _runs(client, "completed") - completed_before
                value = search.input_value()
                measured = runs_page.evaluate("[window.__latency, window.__longTasks, window.__messages]")
                other = run_page.evaluate("[window.__longTasks, window.__messages]")
                browser.close()
    finally:
        process.terminate()
        process.wait(10)
    latency, long_runs, messages = measured
    long_tasks = [*long_runs, *other[0]]
    result: dict[str, Any] = {
        "workload": "console-live", "seconds": seconds, "rate": rate, "waiting_before": waiting,
        "events_sent_per_s": {"without_pages": baseline_sent / seconds, "with_pages": churn.sent / seconds},
        "runs_completed_per_s": completed / seconds, "keys": keys, "typed_intact": value == typed,
        "input_latency_ms": percentiles(latency) if latency else None,
        "long_tasks": {"count": len(long_tasks), "total_ms": sum(long_tasks), "max_ms": max(long_tasks, default=0)},
        "stream_messages": {"runs_view": messages, "run_page": other[1]},
        "server_cpu_s": {"without_pages": without_pages, "with_pages": with_pages,
                         "streams": with_pages - without_pages},
    }  # fmt: skip
    lat = result["input_latency_ms"] or {"p50": float("nan"), "p99": float("nan")}
    print(f"  {rate} run changes/s asked for {seconds} s: {result['events_sent_per_s']['with_pages']:.0f} events/s "
          f"sent, {result['runs_completed_per_s']:.0f} runs completed/s")  # fmt: skip
    print(f"  input latency over {len(latency)} keys: p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms "
          f"(typed text intact: {result['typed_intact']})")  # fmt: skip
    print(
        f"  long tasks: {len(long_tasks)}, {sum(long_tasks):.0f} ms in all, longest {max(long_tasks, default=0):.0f} ms"
    )
    print(f"  stream messages: runs view {messages}, run page {other[1]}")
    print(f"  server CPU over {seconds} s: {without_pages:.2f} s without the pages, {with_pages:.2f} s with them")
    return result


def _type(page: Any, seconds: float) -> tuple[str, int]:
    """Type into the focused box ten keys a second for ``seconds``, clearing it every 30 characters; answers
    what the box must hold at the end and how many keys were pressed."""
    text, keys = "", 0
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if len(text) == 30:
            page.keyboard.press("Control+A")
            page.keyboard.press("Backspace")
            text, keys = "", keys + 2
        character = alphabet[keys % len(alphabet)]
        page.keyboard.press(character)
        text, keys = text + character, keys + 1
        time.sleep(max(0.0, start + keys * 0.1 - time.monotonic()))
    return text, keys


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
RESULT = Path(__file__).with_name("results") / "console-live.json"


def render() -> None:
    """Write the figures of results/console-live.json into docs/benchmarks.md, between its markers."""
    import json

    r = json.loads(RESULT.read_text())
    m, lat, tasks, cpu = r["machine"], r["input_latency_ms"] or {}, r["long_tasks"], r["server_cpu_s"]
    text = "\n".join([
        f"Measured {r['when']} on {m['cpus']} cores, {m['platform']}, Python {m['python']}, SQLite "
        f"{m.get('sqlite', '?')}; {r['rate']} run changes a second asked for {r['seconds']} s, "
        f"{r['waiting_before']:,} runs waiting before.",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| events sent per second, without the pages / with them | {r['events_sent_per_s']['without_pages']:.0f} / "
        f"{r['events_sent_per_s']['with_pages']:.0f} |",
        f"| runs completed per second, with the pages | {r['runs_completed_per_s']:.0f} |",
        f"| input latency p50 / p99 ({r['keys']} keys) | {lat.get('p50', float('nan')):.1f} ms / "
        f"{lat.get('p99', float('nan')):.1f} ms |",
        f"| the search box holds what was typed | {'yes' if r['typed_intact'] else 'no'} |",
        f"| long tasks: how many / total / longest | {tasks['count']} / {tasks['total_ms']:.0f} ms / "
        f"{tasks['max_ms']:.0f} ms |",
        f"| stream messages: runs view / run page | {r['stream_messages']['runs_view']:,} / "
        f"{r['stream_messages']['run_page']:,} |",
        f"| server CPU over {r['seconds']} s: without the pages / with them / the streams | "
        f"{cpu['without_pages']:.2f} s / {cpu['with_pages']:.2f} s / {cpu['streams']:.2f} s |",
    ])  # fmt: skip
    doc = DOC.read_text()
    head, _, rest = doc.partition("<!-- console-live -->")
    _, _, tail = rest.partition("<!-- /console-live -->")
    DOC.write_text(f"{head}<!-- console-live -->\n{text}\n<!-- /console-live -->{tail}")
    print(f"written {DOC}")
