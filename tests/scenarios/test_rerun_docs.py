"""The guide's "Rerun", "Rerun from a step" and "Bulk actions" samples run as written, on both stores."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
SECTIONS = ("Rerun", "Rerun from a step", "Bulk actions")


def section_samples(title: str) -> list[tuple[int, str]]:
    """The ```python blocks of a ``###`` section of the guide, with the line each one's code starts on."""
    guide = GUIDE.read_text()
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^##)", guide, re.S | re.M)
    assert match, f"docs/guide.md has no section {title!r}"
    samples = []
    for block in re.finditer(r"^```python\n(.*?)^```", match.group(1), re.S | re.M):
        samples.append((guide.count("\n", 0, match.start(1) + block.start(1)) + 1, block.group(1)))
    return samples


SAMPLES = [(title, line, code) for title in SECTIONS for line, code in section_samples(title)]


def test_each_section_has_a_sample() -> None:
    assert {title for title, _, _ in SAMPLES} == set(SECTIONS)


def _awaits(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return False
    return any(isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith) for node in ast.walk(statement))


@pytest.mark.parametrize(("title", "line", "sample"), SAMPLES, ids=[f"{t}-line{n}" for t, n, _ in SAMPLES])
async def test_every_sample_runs(title: str, line: int, sample: str, app: tarry.Tarry, clock: VirtualClock) -> None:
    """What comes before the first top-level ``await`` is set up first (functions registered); the rest runs
    inside ``async with app``. A failing ``assert`` is reported at its line of docs/guide.md."""
    body = ast.parse(sample).body
    first = next((statement.lineno - 1 for statement in body if _awaits(statement)), len(sample.splitlines()))
    lines = sample.splitlines(True)
    setup = ast.increment_lineno(ast.parse("".join(lines[:first])), line - 1)
    run = ast.parse("async def sample() -> None:\n" + "".join("    " + text for text in lines[first:]) + "    pass\n")
    namespace: dict[str, Any] = {"tarry": tarry, "app": app, "clock": clock, "asyncio": asyncio}
    exec(compile(setup, str(GUIDE), "exec"), namespace)
    exec(compile(ast.increment_lineno(run, line + first - 2), str(GUIDE), "exec"), namespace)
    async with app:
        await asyncio.wait_for(namespace["sample"](), 30)
