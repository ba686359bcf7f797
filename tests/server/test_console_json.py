"""The JSON the console reads (design of the console, part B): run counts, the run list's ``run_id`` and
``rerun_of``, a run's view with ``truncate``, output downloads, ``child_run_id`` and ``reruns``,
``functions?counts=true`` and the bulk actions' ``dry_run``; on both stores, with their bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

import tarry
from tarry._server import create_app
from tarry.testing import VirtualClock
from tests.conftest import LIMIT, start_run

STATUSES = ["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"]
BIG = "x" * 70_000


def define(app: tarry.Tarry) -> None:
    @app.function(trigger="shop/order.paid", retries=0)
    async def fulfil(ctx: tarry.Context) -> Any:
        if ctx.event.data.get("hold"):
            await ctx.step.wait_for_event("hold", event="shop/release", timeout="1d")
        if ctx.event.data.get("fail"):
            await ctx.step.run("ship", _broken)
        big = await ctx.step.run("label", lambda: {"label": BIG} if ctx.event.data.get("big") else "small")
        return {"done": True, "big": BIG} if ctx.event.data.get("big") else {"done": True, "small": big}

    @app.function(trigger="shop/parent")
    async def parent(ctx: tarry.Context) -> Any:
        return await ctx.step.invoke("call child", "child", data={"n": 1})

    @app.function(trigger="shop/child.direct")
    async def child(ctx: tarry.Context) -> Any:
        await ctx.step.wait_for_event("gate", event="shop/child.go", timeout="1d")
        return {"child": True}


def _broken() -> None:
    raise tarry.NonRetriableError("no courier")


@pytest.fixture
async def served(make_app: Callable[..., tarry.Tarry]) -> AsyncIterator[tuple[tarry.Tarry, httpx.AsyncClient]]:
    app = make_app(base_url="http://testserver")
    define(app)
    async with app:
        server = create_app(app, manage=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://testserver") as c:
            yield app, c


async def send(app: tarry.Tarry, **data: Any) -> tarry.Run:
    return await start_run(app, tarry.Event("shop/order.paid", data))


# -- counts -------------------------------------------------------------------


async def test_counts_hold_every_status_and_follow_the_filters(
    served: tuple[tarry.Tarry, httpx.AsyncClient], clock: VirtualClock
) -> None:
    app, client = served
    empty = (await client.get("/api/v1/runs/counts")).json()
    assert empty == {"counts": dict.fromkeys(STATUSES, 0), "total": 0}
    done = await send(app)
    await send(app, fail=True)
    waiting = await send(app, hold=True)
    await clock.advance("1h")
    later = await send(app, hold=True)
    body = (await client.get("/api/v1/runs/counts")).json()
    assert list(body["counts"]) == STATUSES
    assert body["counts"] == {**dict.fromkeys(STATUSES, 0), "completed": 1, "failed": 1, "waiting": 2}
    assert body["total"] == 4
    of_function = (await client.get("/api/v1/runs/counts", params={"function": "fulfil"})).json()
    assert of_function["total"] == 4
    assert (await client.get("/api/v1/runs/counts", params={"function": "parent"})).json()["total"] == 0
    since = (later.created_at - timedelta(minutes=1)).isoformat()
    recent = (await client.get("/api/v1/runs/counts", params={"created_after": since})).json()
    assert recent["counts"]["waiting"] == 1 and recent["total"] == 1
    before = (await client.get("/api/v1/runs/counts", params={"created_before": since, "function": "fulfil"})).json()
    assert before["total"] == 3
    by_event = (await client.get("/api/v1/runs/counts", params={"event_id": waiting.event.id})).json()
    assert by_event["counts"]["waiting"] == 1 and by_event["total"] == 1
    # the list's status and cursor are not filters of the counts
    assert (await client.get("/api/v1/runs/counts", params={"status": "failed"})).json()["total"] == 4
    assert done.status == tarry.RunStatus.COMPLETED


@pytest.mark.parametrize(
    ("params", "named"),
    [({"created_after": "yesterday"}, "created_after"), ({"created_before": "2024-05-01T09:00:00"}, "created_before"),
     ({"function": "a", "function_id": "b"}, "function")],
)  # fmt: skip
async def test_counts_refuse_bad_filters(
    served: tuple[tarry.Tarry, httpx.AsyncClient], params: dict[str, str], named: str
) -> None:
    _, client = served
    answer = await client.get("/api/v1/runs/counts", params=params)
    assert answer.status_code == 400 and named in answer.json()["error"]


# -- run_id and rerun_of ------------------------------------------------------


async def test_the_list_finds_one_run_by_id_and_the_reruns_of_a_run(
    served: tuple[tarry.Tarry, httpx.AsyncClient],
) -> None:
    app, client = served
    first = await send(app, fail=True)
    other = await send(app, fail=True)
    again = await app.rerun(first.id)
    await app.idle(timeout=LIMIT)
    twice = await app.rerun(first.id)
    await app.idle(timeout=LIMIT)
    one = (await client.get("/api/v1/runs", params={"run_id": other.id})).json()
    assert [r["id"] for r in one["runs"]] == [other.id] and one["next_cursor"] is None
    assert (await client.get("/api/v1/runs", params={"run_id": "nope"})).json()["runs"] == []
    # combined with the other filters: every one must hold
    assert (await client.get("/api/v1/runs", params={"run_id": other.id, "status": "completed"})).json()["runs"] == []
    assert (await client.get("/api/v1/runs", params={"run_id": other.id, "function": "parent"})).json()["runs"] == []
    reruns = (await client.get("/api/v1/runs", params={"rerun_of": first.id})).json()
    assert [r["id"] for r in reruns["runs"]] == [twice, again]
    assert all(r["rerun_of"] == first.id for r in reruns["runs"])
    paged = (await client.get("/api/v1/runs", params={"rerun_of": first.id, "limit": 1})).json()
    assert [r["id"] for r in paged["runs"]] == [twice]
    rest = (await client.get("/api/v1/runs", params={"rerun_of": first.id, "cursor": paged["next_cursor"]})).json()
    assert [r["id"] for r in rest["runs"]] == [again]
    by_event = {"rerun_of": first.id, "event_id": first.event.id}
    assert len((await client.get("/api/v1/runs", params=by_event)).json()["runs"]) == 2
    by_other_event = {"rerun_of": first.id, "event_id": other.event.id}
    assert (await client.get("/api/v1/runs", params=by_other_event)).json()["runs"] == []
    assert (await client.get("/api/v1/runs", params={"rerun_of": other.id})).json()["runs"] == []
    assert (await client.get("/api/v1/runs", params={"rerun_of": first.id, "run_id": again})).json()["runs"][0][
        "id"
    ] == again


# -- a run's view ---------------------------------------------------------------


async def test_truncate_cuts_large_outputs_and_the_downloads_give_them_whole(
    served: tuple[tarry.Tarry, httpx.AsyncClient],
) -> None:
    app, client = served
    run = await send(app, big=True)
    whole = (await client.get(f"/api/v1/runs/{run.id}")).json()
    assert whole["output"]["big"] == BIG and "output_truncated" not in whole
    assert "output_truncated" not in whole["steps"][0]
    view = (await client.get(f"/api/v1/runs/{run.id}", params={"truncate": 65536})).json()
    assert view["output"] is None
    cut = view["output_truncated"]
    size = len(json.dumps({"done": True, "big": BIG}, separators=(",", ":")).encode())
    assert cut["size"] == size and len(cut["preview"]) == 2000 and cut["preview"].startswith('{"done":true')
    [label] = view["steps"]
    assert label["output"] is None and label["output_truncated"]["size"] > 65536
    download = await client.get(cut["url"])
    assert download.status_code == 200 and download.json() == {"done": True, "big": BIG}
    assert download.headers["content-disposition"] == f'attachment; filename="{run.id}.json"'
    step_download = await client.get(label["output_truncated"]["url"])
    assert step_download.json() == {"label": BIG}
    assert step_download.headers["content-disposition"] == f'attachment; filename="{run.id}-label.json"'
    small = await send(app)
    small_view = (await client.get(f"/api/v1/runs/{small.id}", params={"truncate": "1024"})).json()
    assert small_view["output"] == {"done": True, "small": "small"} and small_view["output_truncated"] is None
    assert small_view["steps"][0]["output_truncated"] is None and small_view["steps"][0]["output"] == "small"


@pytest.mark.parametrize("value", ["1023", "0", "-5", "abc", "1.5", "", "99999999999999999999"])
async def test_a_bad_truncate_is_refused(served: tuple[tarry.Tarry, httpx.AsyncClient], value: str) -> None:
    app, client = served
    run = await send(app)
    answer = await client.get(f"/api/v1/runs/{run.id}", params={"truncate": value})
    assert answer.status_code == 400 and "truncate" in answer.json()["error"]


async def test_downloads_of_what_has_no_output_answer_404(served: tuple[tarry.Tarry, httpx.AsyncClient]) -> None:
    app, client = served
    held = await send(app, hold=True)
    failed = await send(app, fail=True)
    assert (await client.get("/api/v1/runs/nope/output")).status_code == 404
    assert (await client.get("/api/v1/runs/nope/steps/label/output")).status_code == 404
    assert (await client.get(f"/api/v1/runs/{held.id}/output")).status_code == 404
    assert (await client.get(f"/api/v1/runs/{held.id}/steps/hold/output")).status_code == 404
    assert (await client.get(f"/api/v1/runs/{held.id}/steps/no-such-step/output")).status_code == 404
    assert (await client.get(f"/api/v1/runs/{failed.id}/steps/ship/output")).status_code == 404
    assert (await client.get(f"/api/v1/runs/{failed.id}/output")).status_code == 404


async def test_a_step_id_with_slashes_and_spaces_downloads(make_app: Callable[..., tarry.Tarry]) -> None:
    app = make_app()

    @app.function(trigger="odd/ids")
    async def odd(ctx: tarry.Context) -> Any:
        return await ctx.step.run("a/b c/output", lambda: "x" * 5000)

    async with app:
        server = create_app(app, manage=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://t") as client:
            run = await start_run(app, tarry.Event("odd/ids"))
            view = (await client.get(f"/api/v1/runs/{run.id}", params={"truncate": 1024})).json()
            url = view["steps"][0]["output_truncated"]["url"]
            download = await client.get(url)
            assert download.status_code == 200 and download.json() == "x" * 5000
            assert download.headers["content-disposition"] == f'attachment; filename="{run.id}-a_b_c_output.json"'


async def test_an_invoke_step_names_its_child_run_while_it_waits_and_after(
    served: tuple[tarry.Tarry, httpx.AsyncClient],
) -> None:
    app, client = served
    parent = await start_run(app, tarry.Event("shop/parent"), "parent")
    view = (await client.get(f"/api/v1/runs/{parent.id}")).json()
    [step] = view["steps"]
    assert step["kind"] == "invoke" and step["status"] == "waiting"
    child_id = step["child_run_id"]
    child = (await client.get(f"/api/v1/runs/{child_id}")).json()
    assert child["function_id"] == "child" and child["status"] == "waiting"
    assert [s["child_run_id"] for s in child["steps"]] == [None]
    await app.send(tarry.Event("shop/child.go"))
    await app.idle(timeout=LIMIT)
    done = (await client.get(f"/api/v1/runs/{parent.id}")).json()
    assert done["status"] == "completed" and done["steps"][0]["child_run_id"] == child_id
    # a rerun of the child does not change which run the invoke started
    await app.rerun(child_id)
    await app.idle(timeout=LIMIT)
    assert (await client.get(f"/api/v1/runs/{parent.id}")).json()["steps"][0]["child_run_id"] == child_id


async def test_a_run_lists_its_reruns_newest_first(served: tuple[tarry.Tarry, httpx.AsyncClient]) -> None:
    app, client = served
    run = await send(app, fail=True)
    assert (await client.get(f"/api/v1/runs/{run.id}")).json()["reruns"] == []
    made = []
    for _ in range(22):
        made.append(await app.rerun(run.id))
        await app.idle(timeout=LIMIT)
    view = (await client.get(f"/api/v1/runs/{run.id}")).json()
    assert view["reruns"] == made[::-1][:20]
    rerun = (await client.get(f"/api/v1/runs/{made[0]}")).json()
    assert rerun["rerun_of"] == run.id and rerun["reruns"] == []
    listed = (await client.get("/api/v1/runs", params={"run_id": run.id})).json()["runs"][0]
    assert "reruns" not in listed  # the single run's view only


# -- functions ------------------------------------------------------------------


async def test_functions_with_counts_carry_their_runs_by_status(served: tuple[tarry.Tarry, httpx.AsyncClient]) -> None:
    app, client = served
    await send(app)
    await send(app, fail=True)
    await start_run(app, tarry.Event("shop/parent"), "parent")
    plain = (await client.get("/api/v1/functions")).json()["functions"]
    assert all("runs" not in f for f in plain)
    counted = {
        f["id"]: f for f in (await client.get("/api/v1/functions", params={"counts": "true"})).json()["functions"]
    }
    assert counted["fulfil"]["runs"] == {**dict.fromkeys(STATUSES, 0), "completed": 1, "failed": 1}
    assert counted["parent"]["runs"]["waiting"] == 1 and counted["child"]["runs"]["waiting"] == 1
    assert {k: v for k, v in counted["fulfil"].items() if k != "runs"} == next(f for f in plain if f["id"] == "fulfil")
    assert (await client.get("/api/v1/functions", params={"counts": "false"})).json()["functions"] == plain
    bad = await client.get("/api/v1/functions", params={"counts": "yes"})
    assert bad.status_code == 400 and "counts" in bad.json()["error"]


# -- bulk dry runs --------------------------------------------------------------


async def test_a_bulk_dry_run_counts_what_the_action_would_take_and_changes_nothing(
    served: tuple[tarry.Tarry, httpx.AsyncClient],
) -> None:
    app, client = served
    for _ in range(3):
        await send(app, hold=True)
    for _ in range(2):
        await send(app, fail=True)
    await send(app)
    counts_before = (await client.get("/api/v1/runs/counts")).json()
    preview = await client.post("/api/v1/runs/cancel", json={"function_id": "fulfil", "dry_run": True})
    assert preview.status_code == 200 and preview.json() == {"matching": 3}
    reruns = await client.post("/api/v1/runs/rerun", json={"function_id": "fulfil", "dry_run": True})
    assert reruns.json() == {"matching": 2}
    completed = {"function_id": "fulfil", "status": "completed", "dry_run": True}
    assert (await client.post("/api/v1/runs/rerun", json=completed)).json() == {"matching": 1}
    none = {"function_id": "parent", "dry_run": True}
    assert (await client.post("/api/v1/runs/cancel", json=none)).json() == {"matching": 0}
    assert (await client.get("/api/v1/runs/counts")).json() == counts_before
    # and the real call takes the number the preview gave
    assert (await client.post("/api/v1/runs/cancel", json={"function_id": "fulfil", "dry_run": False})).json() == {
        "cancelled": 3
    }
    assert (await client.post("/api/v1/runs/cancel", json={"function_id": "fulfil", "dry_run": True})).json() == {
        "matching": 0
    }


@pytest.mark.parametrize(
    ("route", "body", "named"),
    [("cancel", {"function_id": "fulfil", "dry_run": "yes"}, "dry_run"),
     ("rerun", {"function_id": "fulfil", "dry_run": 1}, "dry_run"),
     ("cancel", {"dry_run": True}, "filter"),
     ("cancel", {"created_after": "soon", "dry_run": True}, "created_after"),
     ("rerun", {"function_id": "fulfil", "status": "waiting", "dry_run": True}, "status"),
     ("cancel", {"function_id": "fulfil", "status": "failed", "dry_run": True}, "status"),
     ("rerun", {"if_exp": "event.data.(", "dry_run": True}, "")],
)  # fmt: skip
async def test_a_bulk_dry_run_refuses_bad_filters(
    served: tuple[tarry.Tarry, httpx.AsyncClient], route: str, body: dict[str, Any], named: str
) -> None:
    _, client = served
    answer = await client.post(f"/api/v1/runs/{route}", json=body)
    assert answer.status_code == 400 and named in answer.json()["error"]
