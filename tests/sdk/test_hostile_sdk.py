"""What an SDK (or something posing as one) answers cannot make Tarry run a finished step again, lose
exactness, stop serving other runs, or store a sync it refused.

A fake SDK in the test process answers each call as the test scripts it; the
real ``tarry dev`` of the module's fixture calls it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sdk.conftest import Dev, Server
from tests.sdk.fake_sdk import Answer, FakeSdk, op, sha1, sync

pytestmark = pytest.mark.timeout(120)


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


def test_an_answer_over_8_mib_fails_the_attempt(server: Server, fake: FakeSdk) -> None:
    app_id = fake.app(server, lambda request, step: (200, {}, b'"' + b"x" * (8 * 1024 * 1024) + b'"'))
    run = server.run_of(server.send(f"{app_id}/go"))
    assert (run["status"], run["error"]["name"]) == ("failed", "SdkResponseTooLarge")


def test_a_function_that_never_ends_fails_at_1000_steps(server: Server, fake: FakeSdk) -> None:
    app_id = fake.app(server, lambda request, step: (206, {}, [op("StepRun", f"s{len(request['steps'])}", data=1)]))
    run = server.run_of(server.send(f"{app_id}/go"), seconds=90)
    assert (run["status"], run["error"]["name"]) == ("failed", "TooManySteps")
    assert len([s for s in run["steps"] if s["status"] == "completed"]) == 1000


def test_a_run_whose_steps_hold_over_32_mib_fails_naming_it(server: Server, fake: FakeSdk) -> None:
    big = "x" * (3_900_000)  # each step's result under the 4 MiB limit: nine of them are over 32 MiB

    def script(request: dict[str, Any], step_id: str) -> Answer:
        return 206, {}, [op("StepRun", f"s{len(request['steps'])}", data=big)]

    app_id = fake.app(server, script)
    run = server.run_of(server.send(f"{app_id}/go"), seconds=90)
    assert (run["status"], run["error"]["name"]) == ("failed", "RunStateTooLarge")
    assert len([s for s in run["steps"] if s["status"] == "completed"]) == 9  # the call that would carry nine


def test_an_invoke_that_times_out_is_an_error_for_the_sdk(server: Server, fake: FakeSdk) -> None:
    child = fake.app(server, lambda request, step: (206, {}, [{**op("Sleep", "nap"), "name": "2999-01-01T00:00:00Z"}]))

    def script(request: dict[str, Any], step_id: str) -> Answer:
        memo = request["steps"].get(sha1("i"))
        if memo is None:
            return 206, {}, [op("InvokeFunction", "i", opts={"function_id": f"{child}-f", "payload": {"data": {}},
                                                               "timeout": "1s"})]  # fmt: skip
        return 200, {}, memo

    parent = fake.app(server, script)
    run = server.run_of(server.send(f"{parent}/go"))
    assert run["status"] == "completed", run
    assert run["output"]["error"]["name"] == "InvokeTimeoutError"


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
