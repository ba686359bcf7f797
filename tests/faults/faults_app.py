"""The app the fault-injection tests run in `tarry worker` processes, with its kill points.

Step bodies append their side effects to ``$FAULT_DIR/effects.log`` (one line per execution), so a
test can count how often each run's step ran. ``FAULT_KILL=point:step:nth`` makes this process
SIGKILL itself at the nth time ``step`` reaches ``point`` (see ``POINTS``); only this process is
patched, never the product code.
"""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path
from typing import Any

import tarry
from tarry._store.sql import SQLStore

app = tarry.Tarry("faults", database_url=os.environ.get("TARRY_DATABASE_URL", "sqlite:///.tarry/faults.db"))

#: where a process can be killed: inside the body after its effect; inside the step's transaction (for
#: ``#park``, the run's park: its sleep or wait; for ``#finish``, its end) just before it commits; just after
POINTS = ("body", "before-commit", "after-commit")


def effects_log() -> Path:
    return Path(os.environ.get("FAULT_DIR", ".")) / "effects.log"


def effect(run_id: str, step: str) -> str:
    """Record one execution of ``step`` of ``run_id`` (one append: whole lines, even across processes)."""
    fd = os.open(effects_log(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{run_id} {step} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return step


def _kill_point() -> tuple[str, str, int] | None:
    text = os.environ.get("FAULT_KILL")
    if not text:
        return None
    point, step, nth = text.split(":")
    assert point in POINTS, point
    return point, step, int(nth)


_KILL = _kill_point()
_reached = 0


def maybe_kill(point: str, run_id: str, step: str) -> None:
    """Die here (SIGKILL, nothing flushed) if this is the chosen kill point, leaving a note first."""
    global _reached
    if _KILL is None or _KILL[:2] != (point, step):
        return
    _reached += 1
    if _reached == _KILL[2]:
        effect(run_id, "killed:" + step)
        os.kill(os.getpid(), signal.SIGKILL)


#: the store's transaction (and its async method) a kill point of each pseudo-step wraps; real steps: record_step
_TRANSACTIONS = {"#finish": "finish", "#park": "park"}


def _patch_store() -> None:
    if _KILL is None or _KILL[0] == "body":
        return
    chosen = _KILL[1]
    name = _TRANSACTIONS.get(chosen, "record_step")
    inner, outer = getattr(SQLStore, "_" + name), getattr(SQLStore, name)

    def step_of(args: tuple[Any, ...]) -> str:  # record_step(run_id, owner, step, ...); the others by name
        return chosen if name != "record_step" else str(args[1].id)

    @functools.wraps(inner)
    def in_transaction(self: SQLStore, c: Any, run_id: str, *args: Any) -> Any:
        result = inner(self, c, run_id, *args)
        maybe_kill("before-commit", run_id, step_of(args))  # written, not committed: it dies with us
        return result

    @functools.wraps(outer)
    async def committed(self: SQLStore, run_id: str, *args: Any) -> Any:
        result = await outer(self, run_id, *args)
        maybe_kill("after-commit", run_id, step_of(args))
        return result

    setattr(SQLStore, inner.__name__, in_transaction)
    setattr(SQLStore, outer.__name__, committed)


_patch_store()


@app.function(trigger="fault/start", retries=0)
async def flow(ctx: tarry.Context) -> Any:
    """A step, a timer, a wait resumed by an event, a step after it."""
    await ctx.step.run("one", effect, ctx.run_id, "one")
    await ctx.step.sleep("nap", "100ms")
    got = await ctx.step.wait_for_event("w", event="fault/go", match="data.n", timeout="1h")

    def two() -> str:
        effect(ctx.run_id, "two")
        maybe_kill("body", ctx.run_id, "two")
        return "two"

    await ctx.step.run("two", two)
    return None if got is None else got.data["n"]


@app.function(trigger="race/start", retries=0)
async def keyed(ctx: tarry.Context) -> Any:
    """Waits for any event with its own key (what ``notify`` sends), then records one effect."""
    got = await ctx.step.wait_for_event("w", key=f"race-{ctx.event.data['n']}", timeout="1h")
    await ctx.step.run("after", effect, ctx.run_id, "after")
    return None if got is None else got.data["sender"]


@app.function(trigger="fault/flaky", retries=3)
async def flaky(ctx: tarry.Context) -> str:
    """Its first two attempts fail (each error recorded), the third succeeds; a kill point in the body."""

    def call() -> str:
        effect(ctx.run_id, "call")
        maybe_kill("body", ctx.run_id, "call")
        if ctx.attempt < 2:
            raise tarry.RetryAfterError(f"attempt {ctx.attempt} failed", "100ms")
        return "ok"

    return await ctx.step.run("call", call)
