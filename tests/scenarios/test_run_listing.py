"""Listing runs: every filter of ``app.list_runs`` alone and combined, its time bounds, its bad input,
and the pages of the one store query behind every list of runs (newest and oldest first)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import tarry
from tarry._store.base import RunQuery
from tarry.testing import VirtualClock
from tests.conftest import LIMIT


async def seeded(app: tarry.Tarry, clock: VirtualClock) -> list[tarry.Run]:
    """Six runs, one a second: a, b, a, b, a, b ("a" completes, "b" sleeps); newest first."""

    @app.function(trigger="a")
    async def quick(ctx: tarry.Context) -> int:
        return int(ctx.event.data["n"])

    @app.function(trigger="b")
    async def slow(ctx: tarry.Context) -> None:
        await ctx.step.sleep("s", "1d")

    for n in range(6):
        await app.send(tarry.Event("a" if n % 2 == 0 else "b", {"n": n}))
        await app.idle(timeout=LIMIT)
        await clock.advance("1s")
    runs = await app.list_runs()
    assert [r.event.data["n"] for r in runs] == [5, 4, 3, 2, 1, 0]
    return runs


async def test_each_filter_alone_and_combined(app: tarry.Tarry, clock: VirtualClock) -> None:
    async with app:
        runs = await seeded(app, clock)
        n = {r.id: r.event.data["n"] for r in runs}

        async def listed(**filters: object) -> list[int]:
            return [n[r.id] for r in await app.list_runs(**filters)]  # type: ignore[arg-type]

        assert await listed(function_id="quick") == [4, 2, 0]
        assert await listed(function_id="nothing") == []
        assert await listed(status="sleeping") == [5, 3, 1]
        assert await listed(status=["sleeping", "completed"]) == [5, 4, 3, 2, 1, 0]
        assert await listed(status=[tarry.RunStatus.COMPLETED, "failed"]) == [4, 2, 0]
        assert await listed(status=["failed", "cancelled"]) == []
        assert await listed(event_id=runs[2].event.id) == [3]
        assert await listed(event_id=runs[2].event.id, status="completed") == []
        assert await listed(event_id=runs[2].event.id, function_id="slow", status="sleeping") == [3]
        third = runs[3].created_at  # the run of n=2
        assert await listed(created_after=third) == [5, 4, 3, 2]  # inclusive
        assert await listed(created_before=third) == [1, 0]  # exclusive
        assert await listed(created_after=third, created_before=runs[1].created_at) == [3, 2]
        assert await listed(created_after=third, created_before=third) == []
        assert await listed(created_after=third + timedelta(microseconds=1)) == [5, 4, 3]
        assert await listed(created_before=third + timedelta(microseconds=1)) == [2, 1, 0]
        other_zone = third.astimezone(timezone(timedelta(hours=-5)))
        assert await listed(created_after=other_zone, function_id="quick", status="completed") == [4, 2]
        assert await listed(function_id="slow", created_before=third, limit=1) == [1]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"status": "done"}, "invalid status 'done': one of queued, running"),
        ({"status": ["failed", "nope"]}, "invalid status 'nope'"),
        ({"status": []}, "invalid status \\[\\]: name at least one status"),
        ({"created_after": datetime(2024, 1, 1)}, "invalid created_after .*a naive datetime"),
        (
            {"created_before": "2024-01-01T00:00:00Z"},
            "invalid created_before '2024-01-01T00:00:00Z': an aware datetime",
        ),
        ({"function_id": 3}, "invalid function_id 3: a non-empty string"),
        ({"event_id": ""}, "invalid event_id '': a non-empty string"),
        ({"limit": 0}, "invalid limit 0: an int from 1 to 10000"),
        ({"limit": 10_001}, "invalid limit 10001"),
        ({"limit": True}, "invalid limit True"),
    ],
)
async def test_bad_filters_name_the_field(running: tarry.Tarry, filters: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await running.list_runs(**filters)  # type: ignore[arg-type]


async def test_list_runs_sync_takes_the_filters(app: tarry.Tarry, clock: VirtualClock) -> None:
    async with app:
        runs = await seeded(app, clock)
    listed = app.list_runs_sync(function_id="slow", created_after=runs[3].created_at)
    assert [r.event.data["n"] for r in listed] == [5, 3]


@pytest.mark.parametrize("oldest_first", [False, True], ids=["newest", "oldest"])
async def test_pages_hold_every_run_once_in_order(app: tarry.Tarry, clock: VirtualClock, oldest_first: bool) -> None:
    @app.function(trigger="p")
    async def paged(ctx: tarry.Context) -> None:
        return None

    async with app:
        for second in range(5):  # several runs in one millisecond, and several milliseconds
            await app.send([tarry.Event("p", {"s": second, "i": i}) for i in range(3)])
            await clock.advance("1s")
        await app.idle(timeout=LIMIT)
        everything = await app.list_runs()
        order = sorted(everything, key=lambda r: (r.created_at, r.id), reverse=not oldest_first)
        for size in (1, 2, 4, 15, 16):
            seen: list[str] = []
            position: tuple[int, str] | None = None
            while True:
                query = RunQuery(after=position, oldest_first=oldest_first)
                page, position = await app._query_runs(query, size)
                assert len(page) <= size
                seen += [r.id for r in page]
                if position is None:
                    break
                assert len(page) == size
            assert seen == [r.id for r in order], size
        # the bounds, a status and a position together: the runs of the middle three seconds after the 5th
        middle = _ms(order[7])
        cut = order[4]
        query = RunQuery(statuses=("completed",), created_after=middle - 1000, created_before=middle + 2000,
                         after=(_ms(cut), cut.id), oldest_first=oldest_first)  # fmt: skip
        page, position = await app._query_runs(query, 100)
        expected = [r.id for r in order[5:] if middle - 1000 <= _ms(r) < middle + 2000]
        assert [r.id for r in page] == expected and len(expected) >= 3 and position is None


def _ms(run: tarry.Run) -> int:
    return round(run.created_at.timestamp() * 1000)
