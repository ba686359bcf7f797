"""SDK functions beside a Tarry app's own, in one ``tarry dev``: an SDK function invokes a local one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk.conftest import Dev, halt, sdk_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    pair = Dev(tmp_path_factory.mktemp("both") / "tarry.db", app="tests/sdk/local_app.py:app")
    try:
        yield pair
    finally:
        pair.close()


def test_an_sdk_function_invokes_a_function_of_the_tarry_app_by_its_id(both: Dev) -> None:
    server = both.server
    assert {"billing", "shop-mixed"} <= set(server.functions())
    run = server.run_of(server.send("sdk/mixed"))
    assert run["status"] == "completed", run
    assert run["output"] == {"total": 40, "event": "tarry/function.invoked"}


def test_tarry_dev_syncs_an_sdk_app_again_once_it_is_reloaded_with_more_functions(both: Dev) -> None:
    server = both.server
    assert "shop-extra" not in server.functions()
    halt(both.sdk)
    both.sdk = sdk_server(both.sdk_port, INNGEST_DEV=f"http://127.0.0.1:{both.port}", SDK_EXTRA="1")  # reloaded
    server.until(lambda: "shop-extra" in server.functions(), "the reloaded app to be synced again", 30)
    assert server.run_of(server.send("sdk/extra"))["output"] == "added after a reload"
