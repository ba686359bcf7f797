"""SDK functions beside a Tarry app's own, in one ``tarry dev``: an SDK function invokes a local one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk.conftest import Dev

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
