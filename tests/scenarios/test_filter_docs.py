"""The guide's samples on trigger filters and failure handlers run as written, on both stores."""

from __future__ import annotations

import ast
import asyncio
import re
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.scenarios.test_flow_docs import GUIDE, awaits


def section_samples(heading: str) -> list[tuple[int, str]]:
    """The ```python blocks under ``heading`` (a line of the guide) up to the next heading of its level or
    above, each with the guide's line its code starts on."""
    guide = GUIDE.read_text()
    level = len(heading) - len(heading.lstrip("#"))
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#{{1,{level}}} |\Z)", guide, re.S | re.M)
    assert match, f"docs/guide.md has no heading {heading!r}"
    samples = []
    for block in re.finditer(r"^```python\n(.*?)^```", match.group(1), re.S | re.M):
        line = guide.count("\n", 0, match.start(1) + block.start(1)) + 1
        samples.append((line, block.group(1)))
    return samples


SAMPLES = [*section_samples("## Trigger filters"), *section_samples("### Failure handlers")]


def test_the_sections_have_their_samples() -> None:
    assert len(section_samples("## Trigger filters")) >= 2
    assert len(section_samples("### Failure handlers")) >= 1


@pytest.mark.parametrize(("line", "sample"), SAMPLES, ids=[f"line{line}" for line, _ in SAMPLES])
async def test_every_sample_runs(line: int, sample: str, app: tarry.Tarry, clock: VirtualClock) -> None:
    """As the flow-control samples: the functions are registered first; the lines from the first that
    awaits run inside ``async with app``. A failing ``assert`` is reported at its line of docs/guide.md."""
    body = ast.parse(sample).body
    first = next((statement.lineno - 1 for statement in body if awaits(statement)), len(sample.splitlines()))
    lines = sample.splitlines(True)
    setup = ast.increment_lineno(ast.parse("".join(lines[:first])), line - 1)
    run = ast.parse("async def sample() -> None:\n" + "".join("    " + text for text in lines[first:]) + "    pass\n")
    namespace: dict[str, Any] = {"tarry": tarry, "app": app, "clock": clock, "asyncio": asyncio}
    exec(compile(setup, str(GUIDE), "exec"), namespace)
    exec(compile(ast.increment_lineno(run, line + first - 2), str(GUIDE), "exec"), namespace)
    assert app.functions, "a sample registers at least one function"
    async with app:
        await asyncio.wait_for(namespace["sample"](), 30)
