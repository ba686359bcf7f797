"""An app for the crash test: run as a script, it starts a run and blocks inside its second step.

``python -m tests.scenarios.crash_app DB_URL FOLDER`` sends one event, prints its id, and its
run records step one, then blocks in step two until the process is killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import tarry


def define(app: tarry.Tarry, folder: Path) -> None:
    @app.function(trigger="crash/start")
    async def crashy(ctx: tarry.Context) -> str:
        def one() -> str:
            with open(folder / "one.log", "a") as log:
                log.write("one\n")
            return "first"

        def two() -> str:
            with open(folder / "two.log", "a") as log:
                log.write("two\n")
            if os.environ.get("CRASH_BLOCK") == "1":
                time.sleep(3600)  # killed here
            return "second"

        first = await ctx.step.run("one", one)
        second = await ctx.step.run("two", two)
        return f"{first}+{second}"


async def main(url: str, folder: Path) -> None:
    app = tarry.Tarry("crash", database_url=url)
    define(app, folder)
    async with app:
        [event_id] = await app.send(tarry.Event("crash/start"))
        print(event_id, flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
