"""What an SDK (or something posing as one) answers cannot make Tarry run a finished step again, lose
exactness, stop serving other runs, or store a sync it refused.

A fake SDK in the test process answers each call as the test scripts it; the
real ``tarry dev`` of the module's fixture calls it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.sdk.conftest import Dev, Server

pytestmark = pytest.mark.timeout(120)
Answer = tuple[int, dict[str, str], Any]


def sha1(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


class FakeSdk:
    """Answers ``POST /<app>?fnId=...&stepId=...`` with ``scripts[app](request, step_id)``; keeps every call."""

    def __init__(self) -> None:
        self.scripts: dict[str, Callable[[dict[str, Any], str], Answer]] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["content-length"])))
                parts = urlsplit(self.path)
                app, step_id = parts.path.strip("/"), parse_qs(parts.query)["stepId"][0]
                fake.calls.append((app, step_id, request))
                status, headers, body = fake.scripts[app](request, step_id)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"x-inngest-sdk": "inngest-py:v0.5.19", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def app(self, server: Server, script: Callable[[dict[str, Any], str], Answer], retries: int = 0,
            app_id: str | None = None, function: str = "f") -> str:  # fmt: skip
        """Sync an app of one function ``<app>-<function>`` on ``<app>/go`` answered by ``script``; the app id."""
        app_id = app_id or "fake" + uuid.uuid4().hex[:8]
        self.scripts[app_id] = script
        response = server.http.post("/fn/register", json=sync(app_id, f"{self.url}/{app_id}", retries, function))
        assert response.json() == {"ok": True, "modified": True}, response.text
        return app_id

    def steps_of(self, app_id: str) -> list[str]:
        return [step for app, step, _ in self.calls if app == app_id]


def sync(app_id: str, url: str, retries: int = 0, function: str = "f") -> dict[str, Any]:
    fid = f"{app_id}-{function}"
    return {"appname": app_id, "url": url, "v": "0.1", "deploy_type": "ping", "sdk": "py:v0.5.19",
            "framework": "fast_api", "functions": [{
                "id": fid, "name": function, "triggers": [{"event": f"{app_id}/go"}],
                "steps": {"step": {"id": "step", "name": "step", "retries": {"attempts": retries},
                                   "runtime": {"type": "http", "url": f"{url}?fnId={fid}&stepId=step"}}},
            }]}  # fmt: skip


def op(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"id": sha1(name), "op": kind, "name": name, "displayName": name, "opts": None, "data": None, **fields}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSdk]:
    sdk = FakeSdk()
    yield sdk
    sdk.server.shutdown()


def test_an_opcode_of_a_finished_step_beside_a_new_one_never_runs_it_again(server: Server, fake: FakeSdk) -> None:
    def script(request: dict[str, Any], step_id: str) -> Answer:
        steps = request["steps"]
        if step_id != "step":  # a planned step, called alone
            return 206, {}, [op("StepRun", "a" if step_id == sha1("a") else "b", data=step_id[:4])]
        if sha1("a") not in steps:
            return 206, {}, [op("StepRun", "a", data="first")]
        if sha1("b") not in steps:  # a buggy SDK: plans "a" again, beside "b"
            return 206, {}, [op("StepPlanned", "a"), op("StepPlanned", "b")]
        return 200, {}, {"a": steps[sha1("a")], "b": steps[sha1("b")]}

    app_id = fake.app(server, script)
    run = server.run_of(server.send(f"{app_id}/go"))
    assert run["status"] == "completed", run
    assert run["output"] == {"a": {"data": "first"}, "b": {"data": sha1("b")[:4]}}
    assert sha1("a") not in fake.steps_of(app_id)  # never called alone: it had finished
    assert sorted(s["id"] for s in run["steps"]) == sorted([sha1("a"), sha1("b")])


def test_numbers_reach_the_sdk_exactly(server: Server, fake: FakeSdk) -> None:
    big = 18446744073709551617  # beyond a double: RFC 8785 would round it

    def script(request: dict[str, Any], step_id: str) -> Answer:
        if sha1("s") not in request["steps"]:
            return 206, {}, [op("StepRun", "s", data={"n": request["event"]["data"]["n"] + 1})]
        return 200, {}, request["steps"][sha1("s")]["data"]["n"]

    app_id = fake.app(server, script)
    run = server.run_of(server.send(f"{app_id}/go", {"n": big}))
    assert (run["status"], run["output"]) == ("completed", big + 1)


def test_a_retry_after_too_far_away_is_taken_as_a_week(server: Server, fake: FakeSdk) -> None:
    app_id = fake.app(server, lambda request, step: (500, {"retry-after": "99999999999"},
                                                     {"name": "Later", "message": "much later"}), retries=2)  # fmt: skip
    run = server.run_of(server.send(f"{app_id}/go"), "sleeping")
    [turn] = run["steps"]
    assert (turn["id"], turn["status"], turn["attempts"]) == ("call-0", "retrying", 1)
    assert turn["wake_at"] is not None  # retried, in at most a week, not failed at once


def test_an_invoke_of_bad_data_fails_that_step_not_the_run(server: Server, fake: FakeSdk) -> None:
    def script(request: dict[str, Any], step_id: str) -> Answer:
        memo = request["steps"].get(sha1("i"))
        if memo is None:
            return 206, {}, [op("InvokeFunction", "i", opts={"function_id": "x", "payload": {"data": [1, 2]}})]
        return 200, {}, memo

    app_id = fake.app(server, script)
    run = server.run_of(server.send(f"{app_id}/go"))
    assert run["status"] == "completed", run
    assert run["output"]["error"]["name"] == "ValueError"
    assert "invalid function_id 'x'" in run["output"]["error"]["message"]


@pytest.mark.parametrize(("answer", "name"), [
    ((206, {}, []), "SdkResponseInvalid"),
    ((206, {}, [{"op": "StepRun"}]), "SdkResponseInvalid"),
    ((200, {}, b"not json"), "SdkResponseInvalid"),
    ((500, {"x-inngest-no-retry": "true"}, {"name": "Boom", "message": "down"}), "Boom"),
])  # fmt: skip
def test_an_answer_outside_the_protocol_fails_the_attempt(server: Server, fake: FakeSdk, answer: Answer,
                                                          name: str) -> None:  # fmt: skip
    app_id = fake.app(server, lambda request, step: answer)
    run = server.run_of(server.send(f"{app_id}/go"))
    assert (run["status"], run["error"]["name"]) == ("failed", name)


def test_a_sync_that_takes_another_apps_function_id_stores_nothing(dev: Dev, fake: FakeSdk) -> None:
    server = dev.server
    intruder = "aa" + uuid.uuid4().hex[:6]
    good = fake.app(server, lambda request, step: (200, {}, "from the first app"), app_id=f"{intruder}-pay")
    body = sync(intruder, f"{fake.url}/{intruder}", function="pay-f")  # its id, "<intruder>-pay-f", is taken
    assert body["functions"][0]["id"] == f"{good}-f"
    fake.scripts[intruder] = lambda request, step: (200, {}, "from the intruder")
    response = server.http.post("/fn/register", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == f"function '{good}-f': a function of the SDK app '{good}' has this id already"
    dev.stop()
    dev.start()  # what is stored is loaded again: the first app's function, and nothing of the intruder
    assert server.run_of(server.send(f"{good}/go"))["output"] == "from the first app"


def test_a_function_id_must_be_of_its_app(server: Server, fake: FakeSdk) -> None:
    body = sync("mine", f"{fake.url}/mine")
    body["functions"][0]["id"] = "theirs-f"
    response = server.http.post("/fn/register", json=body)
    assert response.status_code == 400
    assert (
        response.json()["error"]
        == "function 'theirs-f': invalid id 'theirs-f': the SDK's composite id 'mine-<function id>'"
    )
