"""Functions written with Inngest's Python SDK, unchanged, run by a real ``tarry dev`` (API §13).

The SDK app (tests/sdk/sdk_app.py) is served by uvicorn; ``tarry dev --sdk-url``
asks it to sync at start, then calls it for every turn of every run. The clock
is real: both are processes of their own.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import pytest

from tests.sdk.conftest import Dev, Server

pytestmark = pytest.mark.timeout(120)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def steps_of(run: dict[str, Any]) -> list[dict[str, Any]]:
    return list(run["steps"])


def test_the_sync_registers_each_function_under_its_composite_id(server: Server) -> None:
    functions = {f["id"]: f for f in server.http.get("/api/v1/functions").json()["functions"]}
    assert {"shop-retry", "shop-waiter", "shop-fragile", "shop-fragile-failure", "shop-one-at-a-time"} <= set(functions)
    retry = functions["shop-retry"]
    assert retry["triggers"] == [{"event": "sdk/retry"}]
    assert retry["retries"] == 2
    assert retry["sdk"] == {"app_id": "shop", "url": f"{server.sdk_url}/api/inngest?fnId=shop-retry&stepId=step"}
    assert functions["shop-one-at-a-time"]["options"]["concurrency"] == [{"limit": 1, "key": None, "scope": "function"}]
    assert functions["shop-fragile-failure"]["triggers"] == [
        {"event": "inngest/function.failed", "if_exp": "event.data.function_id == 'shop-fragile'"}
    ]


def test_a_trigger_expression_filters_the_events_that_start_runs(server: Server) -> None:
    plain = server.send("sdk/visit", {"vip": False, "name": "ann"})
    vip = server.send("sdk/visit", {"vip": True, "name": "bob"})
    assert server.run_of(vip)["output"] == "welcome bob"
    assert server.runs_of(plain) == []


def test_a_sync_that_changes_nothing_is_a_no_op(server: Server) -> None:
    first = httpx.put(f"{server.sdk_url}/api/inngest", timeout=10)
    assert first.status_code == 200, first.text
    assert first.json() == {"ok": True, "modified": False}


def test_step_run_is_retried_then_fails_into_the_function(server: Server) -> None:
    key = new_id()
    run = server.run_of(server.send("sdk/retry", {"id": key}), seconds=30)
    assert run["status"] == "completed", run
    assert run["output"] == {"attempt": 1, "caught": "attempt 3 fails too"}  # the SDK's StepError, caught
    calls = server.calls()
    assert calls[f"{key}/flaky"] == 2  # failed once, then passed on its retry (ctx.attempt 1)
    assert calls[f"{key}/never"] == 3  # retries=2: three attempts, then the step failed for good
    never = [s for s in steps_of(run) if s["status"] == "failed"]
    assert [(s["attempts"], s["error"]["name"]) for s in never] == [(3, "ValueError")]


def test_a_non_retriable_error_fails_the_run_at_once(server: Server) -> None:
    key = new_id()
    run = server.run_of(server.send("sdk/hopeless", {"id": key}))
    assert run["status"] == "failed"
    assert run["error"]["name"] == "NonRetriableError"
    assert run["error"]["message"] == "no point in trying again"
    assert server.calls()[f"{key}/boom"] == 1  # retries=3, but not retried


def test_a_retry_after_error_retries_at_the_time_it_gives(server: Server) -> None:
    key = new_id()
    run = server.run_of(server.send("sdk/later", {"id": key}), seconds=30)
    assert run["status"] == "completed", run
    assert run["output"] == 2
    [turn] = [s for s in steps_of(run) if s["id"].startswith("call-")]  # the SDK reports it outside the step
    assert (turn["status"], turn["attempts"]) == ("completed", 2)
    assert [e["name"] for e in turn["errors"]] == ["RetryAfterError"]  # its first attempt's error, kept


def test_an_opcode_tarry_does_not_run_fails_its_step_naming_it(server: Server) -> None:
    run = server.run_of(server.send("sdk/think", {"id": new_id()}))
    assert run["status"] == "failed"
    assert run["error"]["name"] == "UnsupportedOpcode"
    assert run["error"]["message"] == "opcode 'AIGateway' (step.ai) is not run by Tarry"


def test_step_sleep_parks_the_run_until_it_is_due(server: Server) -> None:
    event_id = server.send("sdk/sleep", {"id": new_id()})
    server.run_of(event_id, "sleeping")
    run = server.run_of(event_id, "completed")
    assert run["output"] >= 1.0


def test_wait_for_event_resumes_on_the_matching_event_only(server: Server) -> None:
    order, other = new_id(), new_id()
    event_id = server.send("sdk/order", {"order": order})
    server.run_of(event_id, "waiting")
    server.send("sdk/paid", {"order": other, "amount": 1})  # another order's payment: not this run's
    server.send("sdk/paid", {"order": order, "amount": 42})
    run = server.run_of(event_id, "completed")
    assert run["output"] == {"order": order, "amount": 42}


def test_an_event_sent_before_the_wait_is_reached_still_matches(server: Server) -> None:
    order = new_id()
    event_id = server.send("sdk/order", {"order": order, "slow": 1.0})
    server.run_of(event_id, "running")
    server.send("sdk/paid", {"order": order, "amount": 7})  # while the step before the wait runs
    run = server.run_of(event_id, "completed")
    assert run["output"] == {"order": order, "amount": 7}


def test_wait_for_event_times_out_with_none(server: Server) -> None:
    run = server.run_of(server.send("sdk/order", {"order": new_id(), "timeout": 1}), "completed")
    assert run["output"] is None


def test_parallel_steps_each_run_once(server: Server) -> None:
    key = new_id()
    run = server.run_of(server.send("sdk/parallel", {"id": key}), seconds=30)
    assert run["status"] == "completed", run
    assert run["output"] == ["A", "B", "C"]
    calls = server.calls()
    assert [calls[f"{key}/{name}"] for name in "abc"] == [1, 1, 1]


def test_step_invoke_returns_the_child_runs_output(server: Server) -> None:
    run = server.run_of(server.send("sdk/parent", {"n": 21}))
    assert run["status"] == "completed", run
    assert run["output"] == {"doubled": 42, "event": "inngest/function.invoked"}


def test_step_send_event_starts_the_functions_it_triggers(server: Server) -> None:
    key = new_id()
    run = server.run_of(server.send("sdk/send", {"id": key}))
    assert run["status"] == "completed", run
    [sent] = run["output"]
    [heard] = server.runs_of(sent)
    assert server.run_of(sent)["output"] == f"heard {key}"
    assert heard["function_id"] == "shop-listener"


def test_a_cancel_event_cancels_the_run(server: Server) -> None:
    key = new_id()
    event_id = server.send("sdk/long", {"id": key})
    server.run_of(event_id, "sleeping")
    server.send("sdk/stop", {"id": new_id()})  # another run's
    server.send("sdk/stop", {"id": key})
    run = server.run_of(event_id)
    assert run["status"] == "cancelled"
    assert lifecycle(server, run["id"]) == ["inngest/function.cancelled", "tarry/function.cancelled"]


def lifecycle(server: Server, run_id: str) -> list[str]:
    """The names of the events that tell of the end of run ``run_id``, sorted."""
    events = server.http.get("/api/v1/events", params={"limit": 200}).json()["events"]
    return sorted(e["name"] for e in events if isinstance(e["data"], dict) and e["data"].get("run_id") == run_id)


def test_a_finished_run_is_told_by_inngests_event_and_tarrys(server: Server) -> None:
    run = server.run_of(server.send("sdk/child", {"n": 1}))
    assert run["status"] == "completed"
    assert lifecycle(server, run["id"]) == ["inngest/function.finished", "tarry/function.finished"]


def test_on_failure_runs_with_the_inngest_function_failed_event(server: Server) -> None:
    key = new_id()
    event_id = server.send("sdk/fragile", {"id": key})
    run = server.run_of(event_id)
    assert run["status"] == "failed"
    assert run["error"]["name"] == "ValueError"

    def handler() -> dict[str, Any] | None:
        runs = server.http.get("/api/v1/runs", params={"function": "shop-fragile-failure"}).json()["runs"]
        done = [r for r in runs if r["status"] == "completed" and r["event"]["data"]["run_id"] == run["id"]]
        return done[0] if done else None

    assert lifecycle(server, run["id"]) == ["inngest/function.failed", "inngest/function.finished",
                                            "tarry/function.failed", "tarry/function.finished"]  # fmt: skip
    failure = server.until(handler, "the failure handler's run")
    assert failure["output"] == {"failed": "shop-fragile", "error": f"fragile {key} broke",
                                 "event": "inngest/function.failed", "stack": True}  # fmt: skip


def test_a_concurrency_limit_holds_runs_back(server: Server) -> None:
    events = [server.send("sdk/serial", {"id": new_id()}) for _ in range(3)]
    spans = sorted(server.run_of(e, "completed", seconds=30)["output"] for e in events)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two runs of a function with concurrency limit 1 overlapped: {spans}"


def test_an_sdk_that_times_out_fails_the_attempt(server: Server) -> None:
    run = server.run_of(server.send("sdk/slow", {"seconds": 6}), seconds=30)  # TARRY_SDK_TIMEOUT is 4 s
    assert run["status"] == "failed"
    assert run["error"]["name"] == "SdkTimeout"
    assert "did not answer within 4 s" in run["error"]["message"]


def test_an_unsupported_option_is_refused_at_sync_naming_it(server: Server) -> None:
    response = httpx.put(f"{server.sdk_url}/api/bad", timeout=10)  # the SDK shows what Tarry answered
    assert response.json()["ok"] is False
    assert "function 'bad-bursty': throttle.burst 3 not supported by Tarry" in response.json()["error"]
    assert not [f for f in server.functions() if f.startswith("bad-")]  # nothing of that sync stored


@pytest.mark.parametrize(("body", "problem"), [
    ([], "the sync must be a JSON object"),
    ({"appname": "x", "url": "http://127.0.0.1:1/api/inngest", "functions": []}, "invalid functions"),
    ({"appname": "x", "url": "file:///etc/passwd", "functions": [{}]}, "invalid url"),
    ({"appname": "x", "url": "http://127.0.0.1:1/", "functions": [{"id": "x-f"}]}, "function 'x-f': invalid steps"),
])  # fmt: skip
def test_a_bad_sync_is_refused_with_what_is_wrong(server: Server, body: object, problem: str) -> None:
    response = server.http.post("/fn/register", json=body)
    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert problem in response.json()["error"]


def unreachable_app(url: str, retries: int) -> dict[str, Any]:
    """A sync naming an SDK at ``url``, with one function ``<app>-f`` on ``<app>/go``."""
    app_id = "gone" + new_id()
    return {"appname": app_id, "url": url, "v": "0.1", "deploy_type": "ping", "sdk": "py:v0.5.19",
            "framework": "fast_api", "functions": [{
                "id": f"{app_id}-f", "name": "f", "triggers": [{"event": f"{app_id}/go"}],
                "steps": {"step": {"id": "step", "name": "step", "retries": {"attempts": retries},
                                   "runtime": {"type": "http", "url": f"{url}?fnId={app_id}-f&stepId=step"}}},
            }]}  # fmt: skip


def test_an_sdk_that_cannot_be_reached_fails_the_attempt_which_is_retried(server: Server) -> None:
    body = unreachable_app("http://127.0.0.1:9/api/inngest", retries=1)
    assert server.http.post("/fn/register", json=body).json() == {"ok": True, "modified": True}
    run = server.run_of(server.send(f"{body['appname']}/go"), seconds=30)
    assert run["status"] == "failed"
    assert run["error"]["name"] == "SdkUnreachable"
    [turn] = steps_of(run)
    assert (turn["id"], turn["status"], turn["attempts"]) == ("call-0", "failed", 2)  # tried, then retried once


def test_an_answer_that_is_not_the_sdks_fails_the_attempt(server: Server) -> None:
    body = unreachable_app(f"{server.url}/healthz", retries=0)  # answers, but is no SDK
    assert server.http.post("/fn/register", json=body).json()["ok"] is True
    run = server.run_of(server.send(f"{body['appname']}/go"))
    assert run["status"] == "failed"
    assert run["error"]["name"] == "NotAnSdk"
    assert "without the x-inngest-sdk header" in run["error"]["message"]


def test_a_restarted_tarry_dev_resumes_the_run_that_was_waiting(dev: Dev) -> None:
    server = dev.server
    order = new_id()
    event_id = server.send("sdk/order", {"order": order})
    server.run_of(event_id, "waiting")
    dev.stop()
    dev.start()  # the same database: the synced functions and the waiting run are both stored
    server.send("sdk/paid", {"order": order, "amount": 5})
    assert server.run_of(event_id, "completed")["output"] == {"order": order, "amount": 5}
