"""Against a real `tarry dev` process: HTTP end to end, and the Inngest SDK sending events to it."""

from __future__ import annotations

import time

import httpx
import inngest
import pytest


def wait_for(url: str, run_id: str, status: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 10
    while True:
        run = httpx.get(f"{url}/api/v1/runs/{run_id}").json()
        if run["status"] == status or time.monotonic() > deadline:
            return run  # type: ignore[no-any-return]
        time.sleep(0.05)


def runs_of(url: str, event_id: str) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + 10
    while True:
        runs = httpx.get(f"{url}/api/v1/events/{event_id}/runs").json()["runs"]
        if runs or time.monotonic() > deadline:
            return runs  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_a_run_waits_and_resumes_through_a_real_server(dev_server: str) -> None:
    sent = httpx.post(f"{dev_server}/e/any", json={"name": "app/account.created", "data": {"userId": "live"}})
    [run] = runs_of(dev_server, sent.json()["ids"][0])
    assert wait_for(dev_server, run["id"], "waiting")["status"] == "waiting"
    httpx.post(f"{dev_server}/e/any", json={"name": "app/onboarding.completed", "data": {"userId": "live"}})
    assert wait_for(dev_server, run["id"], "completed")["output"] == "tips sent"


def test_a_resume_url_clicked_through_a_real_server(dev_server: str) -> None:
    sent = httpx.post(f"{dev_server}/e/any", json={"name": "refund/requested", "data": {"orderId": "o-live"}})
    [run] = runs_of(dev_server, sent.json()["ids"][0])
    wait_for(dev_server, run["id"], "waiting")
    [wait] = httpx.get(f"{dev_server}/api/v1/waits", params={"run_id": run["id"]}).json()["waits"]
    assert wait["resume_url"].startswith(dev_server + "/resume/")
    page = httpx.get(wait["resume_url"] + "?approve=yes", headers={"accept": "text/html"})
    assert page.status_code == 200 and "recorded" in page.text
    assert wait_for(dev_server, run["id"], "completed")["output"] == {"orderId": "o-live", "refunded": True}


@pytest.mark.parametrize(("payload", "refunded"), [({"approved": False}, False), ({"approved": True}, True)])
def test_the_dashboards_reject_and_approve_reach_the_example_app(
    dev_server: str, payload: dict[str, bool], refunded: bool
) -> None:
    order = f"o-{refunded}"
    sent = httpx.post(f"{dev_server}/e/any", json={"name": "refund/requested", "data": {"orderId": order}})
    [run] = runs_of(dev_server, sent.json()["ids"][0])
    wait_for(dev_server, run["id"], "waiting")
    [wait] = httpx.get(f"{dev_server}/api/v1/waits", params={"run_id": run["id"]}).json()["waits"]
    path = "/resume/" + wait["resume_url"].rsplit("/resume/", 1)[1]
    assert httpx.post(dev_server + path, json=payload).status_code == 200  # what the run page's form posts
    assert wait_for(dev_server, run["id"], "completed")["output"] == {"orderId": order, "refunded": refunded}


def test_the_inngest_sdk_sends_single_events_and_batches(dev_server: str) -> None:
    client = inngest.Inngest(app_id="sdk-test", event_api_base_url=dev_server, is_production=False)
    [single] = client.send_sync(inngest.Event(name="sdk/single", data={"n": 1}))
    ids = client.send_sync([inngest.Event(name="sdk/batch", data={"n": i}) for i in range(3)])
    assert len(ids) == 3 and len(set(ids)) == 3
    events = httpx.get(f"{dev_server}/api/v1/events", params={"limit": 1000}).json()["events"]
    by_id = {e["id"]: e for e in events}
    assert by_id[single]["name"] == "sdk/single" and by_id[single]["data"] == {"n": 1}
    assert [by_id[i]["data"]["n"] for i in ids] == [0, 1, 2]


def test_the_inngest_sdk_reports_an_invalid_batch_and_nothing_is_stored(dev_server: str) -> None:
    client = inngest.Inngest(app_id="sdk-test", event_api_base_url=dev_server, is_production=False)
    before = len(httpx.get(f"{dev_server}/api/v1/events", params={"limit": 1000}).json()["events"])
    batch = [inngest.Event(name="sdk/ok", data={}), inngest.Event(name="sdk/" + "x" * 300, data={})]
    with pytest.raises(Exception) as info:
        client.send_sync(batch)
    assert "256" in str(info.value) or "name" in str(info.value)
    after = len(httpx.get(f"{dev_server}/api/v1/events", params={"limit": 1000}).json()["events"])
    assert after == before
