"""The flow-control documentation holds, on both stores: every sample of the guide's chapter runs as written,
and examples/flow.py keeps the API it calls within its limits."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import re
import types
from pathlib import Path
from typing import Any

import pytest

import tarry
from tarry.testing import VirtualClock

ROOT = Path(__file__).resolve().parents[2]


GUIDE = ROOT / "docs" / "guide.md"


def chapter_samples(title: str) -> list[tuple[int, str]]:
    """The ```python blocks of a chapter of the guide, each with the guide's line its code starts on."""
    guide = GUIDE.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", guide, re.S | re.M)
    assert match, f"docs/guide.md has no chapter {title!r}"
    samples = []
    for block in re.finditer(r"^( *)```python\n(.*?)^\1```", match.group(1), re.S | re.M):
        indent, code = block.group(1), block.group(2)
        line = guide.count("\n", 0, match.start(1) + block.start(2)) + 1
        samples.append((line, "".join(text[len(indent) :] if text.strip() else text for text in code.splitlines(True))))
    return samples


SAMPLES = chapter_samples("Flow control")


def sample_id(line: int, sample: str) -> str:
    return "-".join([f"line{line}", *re.findall(r"^ *async def (\w+)", sample, re.M)])


def awaits(statement: ast.stmt) -> bool:
    """Whether a statement awaits at the top level (a function's body is not the top level)."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return False
    return any(isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith) for node in ast.walk(statement))


def test_the_chapter_has_its_samples() -> None:
    assert len(SAMPLES) >= 12


@pytest.mark.parametrize(("line", "sample"), SAMPLES, ids=[sample_id(line, sample) for line, sample in SAMPLES])
async def test_every_flow_control_sample_of_the_guide_runs(
    line: int, sample: str, app: tarry.Tarry, clock: VirtualClock
) -> None:
    await run_sample(line, sample, app, clock)


async def run_sample(line: int, sample: str, app: tarry.Tarry, clock: VirtualClock) -> None:
    """The functions are registered first; the lines after them run inside ``async with app``, as the body of
    a coroutine. A failing ``assert`` of a sample is reported at its line of docs/guide.md."""
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


# -- examples/flow.py ---------------------------------------------------------------------------


def load_example(db_url: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.setenv("TARRY_DATABASE_URL", db_url)
    spec = importlib.util.spec_from_file_location("flow_example", ROOT / "examples" / "flow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_flow_example_keeps_the_api_within_its_limits(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example(db_url, monkeypatch)
    await asyncio.wait_for(example.main(), 45)
    crm = example.crm
    printed = capsys.readouterr().out
    assert "pushed 12 invoices" in printed, printed
    assert crm.refused == 0, printed  # never a 429: two calls at once per customer at most
    assert max(crm.most_in_flight.values()) <= example.PER_CUSTOMER
    assert crm.most_at_once <= example.CRM_API.limit  # the limit shared by both functions
    # 12 runs, 5 first starts in any second: the 11th starts at least 2 s after the first
    assert len(crm.pushed_at) == 12
    assert max(crm.pushed_at) - min(crm.pushed_at) >= 1.5, printed
    assert crm.contacts_fetched == {"c-1": 1, "c-2": 1}  # one sync per burst of webhooks
    app = example.app
    synced = {run.output["contactId"]: run.output for run in await _runs(app, "sync-contact")}
    assert synced == {
        "c-1": {"contactId": "c-1", "webhooks": 4, "fields": ["email", "phone", "title"]},
        "c-2": {"contactId": "c-2", "webhooks": 1, "fields": ["name"]},
    }


async def _runs(app: tarry.Tarry, function_id: str) -> list[tarry.Run]:
    async with app:
        return await app.list_runs(function_id=function_id)
