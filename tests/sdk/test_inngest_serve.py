"""``tarry serve`` with an SDK in production mode: syncs and calls signed with ``INNGEST_SIGNING_KEY``."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tarry._sdk.driver import bearer_of
from tests.cli.commands import TARRY, free_port
from tests.sdk.conftest import Server, halt, sdk_server, spawn
from tests.sdk.fake_sdk import FakeSdk

pytestmark = pytest.mark.timeout(120)

KEY = "signkey-test-" + "ab12" * 16
OTHER_KEY = "signkey-test-" + "cd34" * 16
EVENT_KEY = "event-key-of-the-shop"
API_KEY = "api-key-of-the-tarry-server"
SIGNED = {"authorization": f"Bearer {bearer_of(KEY)}"}  # what the SDK sends to sync


def cloud_sdk(port: int, tarry_port: int, key: str, app_id: str) -> subprocess.Popen[str]:
    return sdk_server(port, SDK_MODE="cloud", SDK_APP_ID=app_id, INNGEST_SIGNING_KEY=key,
                      INNGEST_API_BASE_URL=f"http://127.0.0.1:{tarry_port}",
                      INNGEST_EVENT_API_BASE_URL=f"http://127.0.0.1:{tarry_port}", INNGEST_EVENT_KEY=EVENT_KEY)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port, sdk_port = free_port(), free_port()
    database = Path(tmp_path_factory.mktemp("serve")) / "tarry.db"
    sdk = cloud_sdk(sdk_port, port, KEY, "shop")
    tarry = spawn([*TARRY, "serve", "--host", "127.0.0.1", "--port", str(port), "--database-url",
                   f"sqlite:///{database}", "--sdk-url", f"http://127.0.0.1:{sdk_port}/api/inngest"],
                  {"TARRY_EVENT_KEYS": EVENT_KEY, "TARRY_SIGNING_KEY": API_KEY, "INNGEST_SIGNING_KEY": KEY})  # fmt: skip
    server = Server(port, sdk_port, event_key=EVENT_KEY, api_key=API_KEY)
    try:
        server.wait_synced("shop-steps", tarry)
        yield server
    finally:
        halt(tarry)
        halt(sdk)


def test_a_signed_sync_is_taken_and_the_signed_calls_run_the_function(served: Server) -> None:
    key = uuid.uuid4().hex
    run = served.run_of(served.send("sdk/steps", {"id": key}))
    assert run["status"] == "completed", run  # the SDK, in production mode, answered only signed calls
    assert run["output"] == 3
    assert [served.calls()[f"{key}/{name}"] for name in ("one", "two", "three")] == [1, 1, 1]


def test_an_unsigned_sync_is_refused(served: Server) -> None:
    body = {"appname": "intruder", "url": "http://127.0.0.1:9/api/inngest", "functions": [{"id": "intruder-f"}]}
    for headers in ({}, {"authorization": f"Bearer {bearer_of(OTHER_KEY)}"}, {"authorization": f"Bearer {API_KEY}"}):
        response = httpx.post(f"{served.url}/fn/register", json=body, headers=headers, timeout=10)
        assert response.status_code == 401, response.text
        assert response.json()["ok"] is False
    assert not [f for f in served.functions() if f.startswith("intruder")]


def test_an_sdk_signing_with_another_key_is_refused(served: Server) -> None:
    port = free_port()
    other = cloud_sdk(port, int(served.url.rsplit(":", 1)[1]), OTHER_KEY, "other")
    try:

        def answer() -> httpx.Response | None:
            try:
                return httpx.put(f"http://127.0.0.1:{port}/api/inngest", timeout=10)
            except httpx.HTTPError:
                return None

        response = served.until(answer, "the other SDK to answer")
        assert response.json() == {"ok": False, "error": "the sync is not signed with this server's "
                                                         "INNGEST_SIGNING_KEY"}  # fmt: skip
        assert not [f for f in served.functions() if f.startswith("other-")]
    finally:
        halt(other)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSdk]:
    sdk = FakeSdk()
    yield sdk
    sdk.server.shutdown()


def test_an_answer_not_signed_with_the_key_fails_the_attempt(served: Server, fake: FakeSdk) -> None:
    app_id = fake.app(served, lambda request, step: (200, {}, "unsigned"), headers=SIGNED)
    run = served.run_of(served.send(f"{app_id}/go"))
    assert (run["status"], run["error"]["name"]) == ("failed", "SdkSignatureInvalid")
    assert re.fullmatch(r"t=\d+&s=[0-9a-f]{64}", fake.signatures[app_id] or "")  # the call went out, signed


def test_a_call_that_cannot_be_signed_fails_the_run_naming_why(served: Server, fake: FakeSdk) -> None:
    app_id = fake.app(served, lambda request, step: (200, {}, "never asked"), retries=2, headers=SIGNED)
    run = served.run_of(served.send(f"{app_id}/go", {"n": 10**400}))  # beyond what RFC 8785's numbers hold
    assert (run["status"], run["error"]["name"]) == ("failed", "SdkRequestUnsignable")
    assert not [call for call in fake.calls if call[0] == app_id]  # not sent, and not retried
