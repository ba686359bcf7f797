"""``tarry rerun RUN_ID [--from-step S] --app APP``: prints the new run's id; each bad input is one line and a
non-zero exit; it never creates a database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import tarry
from tests.cli.commands import error_lines, run

calls: list[str] = []


def define(app: tarry.Tarry, broken: bool) -> None:
    def charge() -> str:
        calls.append("charge")
        return "ch_1"

    def ship() -> str:
        calls.append("ship")
        if broken:
            raise tarry.NonRetriableError("carrier down")
        return "shipped"

    @app.function(trigger="shop/order.paid")
    async def fulfil(ctx: tarry.Context) -> Any:
        if ctx.event.data.get("wait"):
            await ctx.step.wait_for_event("hold", event="shop/release", timeout="1d")
        return [await ctx.step.run("charge", charge), await ctx.step.run("ship", ship)]


def seed(url: str, **data: Any) -> str:
    """A run of ``fulfil`` at ``url``: failed at ship, or waiting with ``wait=True``."""

    async def main() -> str:
        app = tarry.Tarry("cli", database_url=url)
        define(app, broken=True)
        async with app:
            [event_id] = await app.send(tarry.Event("shop/order.paid", data))
            await app.idle()
            [found] = await app.runs_for_event(event_id)
            return found.id

    return asyncio.run(main())


def execute(url: str, run_id: str) -> tarry.Run:
    """Run the worker of the app (ship mended) until ``run_id`` has finished."""

    async def main() -> tarry.Run:
        app = tarry.Tarry("cli", database_url=url)
        define(app, broken=False)
        async with app:
            return await app.wait_for_run(run_id, timeout=20)

    return asyncio.run(main())


def app_file(folder: Path, url: str, function: str = "fulfil") -> str:
    path = folder / "shop.py"
    path.write_text(
        "import tarry\n\n"
        f"app = tarry.Tarry('cli', database_url={url!r})\n\n\n"
        f"@app.function(trigger='shop/order.paid', id={function!r})\n"
        "async def fulfil(ctx: tarry.Context) -> None:\n"
        "    return None\n"
    )
    return f"{path}:app"


def test_rerun_prints_the_new_run_which_a_worker_executes(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "shop.db")
    failed = seed(url)
    spec = app_file(tmp_path, url)
    whole = run("rerun", failed, "--app", spec)
    assert whole.returncode == 0, whole.stderr
    assert whole.stderr.splitlines() == [f"database: {url}"]
    from_ship = run("rerun", failed, "--from-step", "ship", "--app", spec)
    assert from_ship.returncode == 0, from_ship.stderr
    calls.clear()
    done = execute(url, from_ship.stdout.strip())  # the worker executes both reruns
    again = execute(url, whole.stdout.strip())
    assert done.output == ["ch_1", "shipped"] and done.rerun_of == failed
    assert again.output == ["ch_1", "shipped"] and again.rerun_of == failed
    assert sorted(calls) == ["charge", "ship", "ship"], "the rerun from ship did not charge again"
    assert [s.id for s in done.steps] == ["charge", "ship"]


def test_each_bad_input_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "shop.db")
    failed = seed(url)
    waiting = seed(url, wait=True)
    spec = app_file(tmp_path, url)
    (tmp_path / "other").mkdir()
    other = app_file(tmp_path / "other", url, "renamed")
    for args, message in [
        (("nope", "--app", spec), "Error: no run with id 'nope'"),
        ((waiting, "--app", spec), f"Error: run {waiting} is waiting: only a finished run"),
        (
            (failed, "--from-step", "pack", "--app", spec),
            f"Error: invalid from_step 'pack': run {failed} has no such step",
        ),
        ((failed, "--database-url", url), f"Error: tarry rerun needs --app APP: run {failed} is a run of 'fulfil'"),
        ((failed, "--app", other), f"Error: run {failed} is a run of 'fulfil', which is not a function of this app"),
    ]:
        result = run("rerun", *args)
        lines = error_lines(result)
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith(message), (args, result.stderr)
    listed = run("runs", "--database-url", url)
    assert len(listed.stdout.strip().splitlines()) == 2, "no rerun was created"


def test_rerun_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "here.db"
    spec = app_file(tmp_path, "sqlite:///" + str(missing))
    result = run("rerun", "some-run", "--app", spec)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert error_lines(result) == [f"error: no Tarry database at {missing} (start the app or run tarry migrate)"]
    assert not missing.parent.exists()
