"""examples/inngest_app.py runs as its docstring says: the SDK app served, ``tarry dev --sdk-url`` its executor."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.cli.commands import TARRY, free_port
from tests.sdk.conftest import Server, halt, spawn

pytestmark = pytest.mark.timeout(120)


def test_the_order_flow_waits_for_its_payment_then_invokes_and_sends(tmp_path: Path) -> None:
    port, sdk_port = free_port(), free_port()
    sdk = spawn([sys.executable, "-m", "uvicorn", "examples.inngest_app:app", "--port", str(sdk_port),
                 "--log-level", "warning"], {"INNGEST_DEV": f"http://127.0.0.1:{port}"})  # fmt: skip
    dev = spawn(
        [*TARRY, "dev", "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'shop.db'}"],
        {"TARRY_SDK_URLS": f"http://127.0.0.1:{sdk_port}/api/inngest"},
    )  # the URLs from the environment
    server = Server(port, sdk_port)
    try:
        server.wait_synced("shop-order-flow", dev)
        placed = server.send("shop/order.placed", {"orderId": "o-1", "customer": "c-1"})
        server.run_of(placed, "waiting")
        server.send("shop/payment.received", {"orderId": "o-1"})
        run = server.run_of(placed, "completed")
        assert run["output"] == {"order": "o-1", "status": "paid", "receipt": "receipt for o-1 mailed"}
        second = server.send("shop/order.placed", {"orderId": "o-2", "customer": "c-2"})
        paid = server.send("shop/payment.received", {"orderId": "o-2"})  # likely before the run reaches its wait
        assert server.run_of(second, "completed")["output"]["status"] == "paid"  # either way it counts
        assert server.runs_of(paid) == []  # a payment starts no run of its own
    finally:
        halt(dev)
        halt(sdk)
