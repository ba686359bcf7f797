"""Take the console's screenshots for the README and docs/: ``./scripts/screenshots [DIR]`` (default docs/).

It serves examples/shop.py with ``tarry dev`` on a database in a temporary folder, sends it a few orders,
refunds, carts and reports, waits for their runs to settle, and photographs the console in Debian's
Chromium: the functions, the runs, a run's timeline (one that finished, one that failed), the events, at
1280 px wide, and the runs at 390 px. It is never run by the test suite (which must not write tracked files).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "examples" / "shop.py") + ":app"
CHROMIUM = "/usr/bin/chromium"
SHOTS = ("console-functions.png", "console-runs.png", "console-run.png", "console-run-failed.png",
         "console-events.png", "console-narrow.png")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def until(probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := probe()):
        if time.monotonic() > deadline:
            sys.exit(f"screenshots: timed out waiting for {what}")
        time.sleep(0.1)
    return got


class Shop:
    """``tarry dev examples/shop.py:app`` in ``folder``, and the events that give the console something to show."""

    def __init__(self, folder: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TARRY_")}
        env["TARRY_DATABASE_URL"] = "sqlite:///" + str(folder / "shop.db")
        self.log = (folder / "dev.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from tarry._cli import main; main()", "dev", APP, "--port", str(port)],
            cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        until(self._answers, "tarry dev to answer", 30)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            sys.exit(f"screenshots: tarry dev stopped: {Path(self.log.name).read_text()}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def send(self, name: str, data: dict[str, Any]) -> str:
        response = httpx.post(f"{self.url}/e/shop", json={"name": name, "data": data}, timeout=30)
        response.raise_for_status()
        event_id: str = response.json()["ids"][0]
        return event_id

    def runs(self, function: str, status: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = httpx.get(f"{self.url}/api/v1/runs", params={"function": function,
                                                                                  "status": status}).json()["runs"]  # fmt: skip
        return runs

    def fill(self) -> tuple[str, str]:
        """Send the events; answer a finished order's run id and the failed one's, once every run has settled."""
        orders = [("o-1001", "1s", "4242-4242-4242-4242", 42), ("o-1002", "1s", "5555-5555-5555-4444", 19),
                  ("o-1003", "2d", "4242-4242-4242-4242", 87), ("o-1004", "2d", "4000-0000-0000-0002", 250),
                  ("o-1005", "2d", "3782-822463-10005", 12)]  # fmt: skip
        self.send("shop/cart.abandoned", {"cartId": "c-17"})
        self.send("shop/cart.abandoned", {"cartId": "c-18"})
        for order_id, delivery, card, total in orders:
            self.send("shop/order.placed", {"orderId": order_id, "cartId": f"c-{order_id[-2:]}", "delivery": delivery,
                                            "card": card, "total": total})  # fmt: skip
        self.send("shop/order.placed", {"orderId": "o-1006", "cartId": "c-17", "delivery": "1s",
                                        "card": "4242-4242-4242-4242", "total": 64})  # fmt: skip
        self.send("shop/refund.requested", {"orderId": "o-0998"})
        self.send("shop/report.requested", {"day": "yesterday"})
        self.send("shop/report.requested", {"day": "today"})  # the throttle holds this one
        failed = until(lambda: self.runs("fulfil-order", "failed"), "the declined order to fail")
        done = until(lambda: len(self.runs("fulfil-order", "completed")) >= 3 and self.runs("fulfil-order", "completed"),
                     "three orders to complete")  # fmt: skip
        until(lambda: self.runs("fulfil-order", "sleeping"), "orders to sleep until delivery")
        return done[-1]["id"], failed[0]["id"]


def shoot(page: Page, url: str, ready: str, path: Path, live: bool = True) -> None:
    """``live``: wait for the stream too (a finished run's page has nothing left to follow)."""
    page.goto(url)
    expect(page.locator(ready).first).to_be_visible(timeout=15_000)
    if live:
        expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)
    page.wait_for_timeout(500)  # the counts and durations settle
    page.screenshot(path=str(path))
    print(f"  {path}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="./scripts/screenshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("dir", nargs="?", default=str(ROOT / "docs"), help="where the PNG files go (default: docs/)")
    args = parser.parse_args()
    out = Path(args.dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not Path(CHROMIUM).exists():
        sys.exit(f"screenshots: {CHROMIUM} is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="tarry-screenshots-") as folder:
        shop = Shop(Path(folder))
        try:
            finished, failed = shop.fill()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="Europe/Amsterdam",
                                              locale="en-GB", device_scale_factor=1)  # fmt: skip
                page = context.new_page()
                print(f"screenshots of {shop.url} into {out}:")
                shoot(page, shop.url + "/#/functions", "table#functions tbody tr", out / SHOTS[0])
                shoot(page, shop.url + "/#/", "table#runs tbody tr", out / SHOTS[1])
                shoot(page, f"{shop.url}/#/runs/{finished}", "#timeline .step", out / SHOTS[2], live=False)
                shoot(page, f"{shop.url}/#/runs/{failed}", "#timeline .step .attempt", out / SHOTS[3], live=False)
                shoot(page, shop.url + "/#/events", "table#events tbody tr", out / SHOTS[4])
                page.set_viewport_size({"width": 390, "height": 844})
                shoot(page, shop.url + "/#/", "table#runs tbody tr", out / SHOTS[5])
                browser.close()
        finally:
            shop.stop()


if __name__ == "__main__":
    main()
