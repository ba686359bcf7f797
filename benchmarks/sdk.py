"""An Inngest SDK function run by Tarry beside the same function in Tarry's own API, on SQLite.

Each side is a real ``tarry dev`` subprocess on a fresh SQLite file; the
events go to it over HTTP (``POST /e/{key}``, arrays of ``BATCH``), so both
sides pay the same ingest. SDK side: ``tarry dev --sdk-url`` and a uvicorn
subprocess serving ``benchmarks/sdk_app.py:app`` (one HTTP call to the SDK a
turn); Tarry side: ``tarry dev benchmarks.sdk_app:bench`` (steps in-process).
The function: step ``before``, ``wait_for_event("bench/go", if_exp=
"async.data.n == event.data.n")``, step ``after``.

- park: ``runs`` runs started, until all are waiting (``/api/v1/runs/counts``).
- resume: their ``runs`` events sent, until all are completed.
- latency: with ``latency_runs`` runs waiting, one event at a time, from just
  before its POST to the end of the resumed run's ``after`` step (its body
  sends ``time.time()`` over UDP, so the server is not polled meanwhile).
- CPU: of the tarry and SDK processes over park + resume, ms a run (and of
  the ``tarry dev`` process alone).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

from benchmarks.common import fresh_url, percentiles, temp_folder
from benchmarks.wake import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
TARRY = [sys.executable, "-c", "from tarry._cli import main; main()"]
BATCH = 100  # events per POST /e/{key}
WARM = 5  # runs through the whole function before anything is timed
LATENCY_BASE = 1_000_000  # the latency runs' n, apart from the others'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _until(check: Callable[[], Any], what: str, seconds: float, processes: list[subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited ({process.returncode}) while waiting for {what}")
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


class Side:
    """One side's processes, its HTTP client and the UDP socket its ``after`` steps report to."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name, self.folder = name, folder
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TARRY_", "INNGEST_"))}
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.env["BENCH_UDP_PORT"] = str(self.udp.getsockname()[1])
        self.logs: list[IO[bytes]] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def spawn(self, label: str, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{self.name}-{label}.log", "wb")  # noqa: SIM115 (closed in close())
        self.logs.append(log)
        process = subprocess.Popen(command, cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def start(self) -> None:
        url = fresh_url(self.folder, self.name)
        if self.name == "sdk":
            sdk_port = _free_port()
            self.spawn("sdk", [sys.executable, "-m", "uvicorn", "benchmarks.sdk_app:app", "--port", str(sdk_port),
                               "--log-level", "warning"], INNGEST_DEV=f"http://127.0.0.1:{self.port}")  # fmt: skip
            _until(lambda: httpx.get(f"http://127.0.0.1:{sdk_port}/api/inngest", timeout=2).status_code == 200,
                   "the SDK app to serve", 30, self.processes)  # fmt: skip
            self.spawn("tarry", [*TARRY, "dev", "--port", str(self.port), "--database-url", url,
                                 "--sdk-url", f"http://127.0.0.1:{sdk_port}/api/inngest"])  # fmt: skip
        else:
            self.spawn("tarry", [*TARRY, "dev", "benchmarks.sdk_app:bench", "--port", str(self.port),
                                 "--database-url", url])  # fmt: skip
        _until(lambda: self.http.get("/api/v1/functions").json()["functions"], "the function to be served", 30,
               self.processes)  # fmt: skip

    def close(self) -> str:
        """Stop the processes; the tail of their logs."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()
        self.http.close()
        self.udp.close()
        return "\n".join(Path(log.name).read_text(errors="replace")[-2000:] for log in self.logs)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the ``tarry dev`` process, and of all this side's processes."""
        return cpu_seconds(self.processes[-1].pid), sum(cpu_seconds(p.pid) for p in self.processes)

    def send(self, name: str, numbers: range) -> None:
        for i in range(numbers.start, numbers.stop, BATCH):
            batch = [{"name": name, "data": {"n": n}} for n in range(i, min(i + BATCH, numbers.stop))]
            self.http.post("/e/dev", json=batch).raise_for_status()

    def until(self, status: str, n: int, seconds: float = 600) -> None:
        """Until ``n`` runs have ``status``; counted at most about a tenth of the time (at least every 20 ms)."""
        deadline = time.monotonic() + seconds
        while True:
            began = time.monotonic()
            counts = self.http.get("/api/v1/runs/counts").raise_for_status().json()["counts"]
            if counts.get(status, 0) >= n:
                return
            if began > deadline or counts.get("failed"):
                raise TimeoutError(f"{n} runs not {status} within {seconds} s: {counts}")
            time.sleep(max(0.02, 9 * (time.monotonic() - began)))

    def resumed(self, n: int, seconds: float = 60) -> float:
        """When the run of ``n`` ran its ``after`` step (``time.time()``), as it told the UDP socket."""
        self.udp.settimeout(seconds)
        while True:
            number, at = self.udp.recv(256).decode().split()
            if int(number) == n:
                return float(at)

    def drain(self) -> None:
        self.udp.setblocking(False)
        try:
            while True:
                self.udp.recv(256)
        except BlockingIOError:
            pass
        finally:
            self.udp.setblocking(True)


def measure(side: Side, runs: int, latency_runs: int) -> dict[str, float]:
    side.send("bench/start", range(-WARM, 0))
    side.until("waiting", WARM)
    side.send("bench/go", range(-WARM, 0))
    side.until("completed", WARM)

    (server_cpu, cpu), began = side.cpu(), time.perf_counter()
    side.send("bench/start", range(runs))
    side.until("waiting", runs)
    park = time.perf_counter() - began
    began = time.perf_counter()
    side.send("bench/go", range(runs))
    side.until("completed", WARM + runs)
    resume = time.perf_counter() - began
    server_after, cpu_after = side.cpu()
    server_cpu, cpu = server_after - server_cpu, cpu_after - cpu

    side.send("bench/start", range(LATENCY_BASE, LATENCY_BASE + latency_runs))
    side.until("waiting", latency_runs)
    side.drain()
    samples = []
    for n in range(LATENCY_BASE, LATENCY_BASE + latency_runs):
        sent = time.time()
        side.http.post("/e/dev", json=[{"name": "bench/go", "data": {"n": n}}]).raise_for_status()
        samples.append((side.resumed(n) - sent) * 1000)
    side.until("completed", WARM + runs + latency_runs)
    p = percentiles(samples)
    return {"park_per_s": runs / park, "resume_per_s": runs / resume, "latency_p50_ms": p["p50"],
            "latency_p90_ms": p["p90"], "latency_p99_ms": p["p99"], "latency_mean_ms": p["mean"],
            "cpu_ms_per_run": 1000 * cpu / runs, "tarry_cpu_ms_per_run": 1000 * server_cpu / runs}  # fmt: skip


def run(runs: int = 1000, latency_runs: int = 100) -> dict[str, Any]:
    """Both sides, SDK first, each on a fresh SQLite file; prints a table and returns the figures."""
    folder = temp_folder()
    result: dict[str, Any] = {"workload": "sdk-sqlite", "runs": runs, "latency_runs": latency_runs}
    try:
        for name in ("sdk", "tarry"):
            side = Side(name, folder)
            try:
                side.start()
                figures = measure(side, runs, latency_runs)
            except BaseException:
                print(side.close(), file=sys.stderr)  # the tail of the processes' logs
                raise
            side.close()
            result[name] = {k: round(v, 2) for k, v in figures.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _show(result)
    return result


ROWS = [("park (runs/s)", "park_per_s"), ("resume (runs/s)", "resume_per_s"), ("latency p50 (ms)", "latency_p50_ms"),
        ("latency p90 (ms)", "latency_p90_ms"), ("latency p99 (ms)", "latency_p99_ms"),
        ("CPU, park + resume (ms/run)", "cpu_ms_per_run"), ("  of it tarry dev's (ms/run)", "tarry_cpu_ms_per_run")]  # fmt: skip


def _show(result: dict[str, Any]) -> None:
    print(f"  {'':28} {'Inngest SDK':>12} {'Tarry API':>12} {'SDK / Tarry':>12}")
    for label, key in ROWS:
        sdk, own = result["sdk"][key], result["tarry"][key]
        ratio = f"{sdk / own:.2f}" if own else "-"
        print(f"  {label:28} {sdk:12,.2f} {own:12,.2f} {ratio:>12}", flush=True)
