"""Flow control (API §9) at its edges: what frees a slot, processes that run other code, odd key values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tarry
from tests.conftest import LIMIT
from tests.scenarios.gates import Gate, all_queued, one_run
from tests.scenarios.test_poison import corrupt


def gated(app: tarry.Tarry, gate: Gate, *, trigger: str = "job/run", function_id: str = "job", **flow: Any) -> None:
    """A function whose one step stays in ``gate`` (named by ``data.name``)."""

    @app.function(trigger=trigger, id=function_id, retries=0, **flow)
    async def job(ctx: tarry.Context) -> str:
        return str(await ctx.step.run("work", gate.hold, ctx.event.data.get("name", ctx.run_id)))


async def test_a_run_set_aside_at_claim_frees_its_concurrency_slot(
    make_app: Callable[..., tarry.Tarry], db_url: str
) -> None:
    """A run that cannot be loaded is started, then set aside as failed: the run held behind it starts."""
    gate = Gate()
    client = make_app()
    gated(client, gate, concurrency=tarry.Concurrency(limit=1))
    await client.start(worker=False)
    try:
        broken, fine = await client.send([tarry.Event("job/run", {"name": "broken"}),
                                          tarry.Event("job/run", {"name": "fine"})])  # fmt: skip
        [broken_run] = await client.runs_for_event(broken)
        [fine_run] = await client.runs_for_event(fine)
    finally:
        await client.close()
    corrupt(db_url, broken)
    gate.open()
    app = make_app()
    gated(app, gate, concurrency=tarry.Concurrency(limit=1))
    async with app:
        await app.idle(timeout=LIMIT)
        [letter] = await app.dead_letters()
        assert letter.run_id == broken_run.id, "the broken run was set aside (failed)"
        after = await app.get_run(fine_run.id)
        assert after is not None, "the fine run exists"
        assert after.status == "completed", f"held forever behind a run that no longer runs: {after.status} " \
                                            f"({after.queued_reason})"  # fmt: skip


async def test_a_process_without_limits_does_not_lift_the_limits_of_another(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    """Two processes share the store; the one that defines no limited function must not let the other's
    queued runs start past their concurrency limit (every limit holds across every process, §9)."""
    gate = Gate()
    limited = make_app()
    gated(limited, gate, concurrency=tarry.Concurrency(limit=1))
    async with limited:
        ids = await limited.send([tarry.Event("job/run", {"name": f"r{n}"}) for n in range(3)])
        await gate.reached(1)
        await all_queued(limited, ids[1:], "concurrency")
        other = make_app()  # e.g. a process serving the dashboard, or an older release without the option

        @other.function(trigger="other/thing")
        async def thing(ctx: tarry.Context) -> None:
            return None

        await other.start()
        await other.close()
        await gate.stays(1, seconds=1.5)  # the limited app's worker polls at least every 0.5 s
        runs = [await one_run(limited, i) for i in ids]
        assert [r.status for r in runs] == ["running", "queued", "queued"], [(r.status, r.error) for r in runs]
        gate.open()
        for r in runs:
            await limited.wait_for_run(r.id, timeout=LIMIT)
    assert gate.most == 1


async def test_a_number_key_that_is_infinite_is_not_the_string_inf(app: tarry.Tarry) -> None:
    """``"1"``, ``1`` and ``true`` are three partitions; so are the number ∞ and the text "inf"."""
    seen: list[str] = []

    @app.function(trigger="pay/made", idempotency='event.data.k == "number" ? dyn(double("inf")) : dyn("inf")')
    async def pay(ctx: tarry.Context) -> None:
        seen.append(ctx.event.data["k"])

    async with app:
        await app.send(tarry.Event("pay/made", {"k": "number"}))
        await app.send(tarry.Event("pay/made", {"k": "text"}))
        await app.idle(timeout=LIMIT)
    assert sorted(seen) == ["number", "text"], "the number inf and the string 'inf' are two idempotency values"


async def test_a_singleton_replacement_starts_only_once_the_run_it_replaced_has_ended_after_a_restart(
    make_app: Callable[..., tarry.Tarry],
) -> None:
    """``mode="cancel"``: the new run starts only once the old one has ended, also when the old one was
    handed back (its process stopped while it ran) and the new one goes ahead of it by priority."""
    flow: dict[str, Any] = {"singleton": tarry.Singleton(mode="cancel"), "priority": tarry.Priority(run="event.data.p")}
    gate = Gate()
    before = make_app()
    gated(before, gate, **flow)
    async with before:
        [first] = await before.send(tarry.Event("job/run", {"name": "old", "p": 0}))
        await gate.reached(1)
        old = await one_run(before, first)
        [second] = await before.send(tarry.Event("job/run", {"name": "new", "p": 600}))
        await all_queued(before, [second])
        new = await one_run(before, second)
        still = await before.get_run(old.id)
        assert still is not None and still.status == "running", "cancelled at its next step boundary"
    # the process stopped while the old run was executing: it is handed back, its cancel still pending
    gate = Gate()
    after = make_app()
    gated(after, gate, **flow)
    async with after:
        await gate.reached(1)
        assert gate.entered == ["new"], gate.entered
        at_start = await after.get_run(old.id)
        assert at_start is not None
        gate.open()
        done = await after.wait_for_run(new.id, timeout=LIMIT)
        ended = await after.wait_for_run(old.id, timeout=LIMIT)
    assert done.status == "completed" and ended.status == "cancelled"
    assert at_start.status == "cancelled", f"the replacement runs while the run it replaced is {at_start.status}"
