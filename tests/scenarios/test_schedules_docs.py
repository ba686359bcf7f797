"""The schedules documentation holds, on both stores: every sample of the guide's chapter runs as written, and
examples/digest.py sends its digests."""

from __future__ import annotations

import asyncio
import importlib.util
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.scenarios.test_flow_docs import chapter_samples, run_sample, sample_id

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = chapter_samples("Schedules")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=datetime(2026, 1, 5, 7, 30, tzinfo=UTC))  # the chapter's: a Monday


def test_the_chapter_has_its_samples() -> None:
    assert len(SAMPLES) >= 2


@pytest.mark.parametrize(("line", "sample"), SAMPLES, ids=[sample_id(line, sample) for line, sample in SAMPLES])
async def test_every_schedules_sample_of_the_guide_runs(
    line: int, sample: str, app: tarry.Tarry, clock: VirtualClock
) -> None:
    await run_sample(line, sample, app, clock)


# -- examples/digest.py ------------------------------------------------------------------------


def load_example(db_url: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.setenv("TARRY_DATABASE_URL", db_url)
    spec = importlib.util.spec_from_file_location("digest_example", ROOT / "examples" / "digest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_digest_example_sends_one_digest_a_week(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example(db_url, monkeypatch)
    digests = await asyncio.wait_for(example.main(db_url), 30)
    assert [(d["week_ending"], d["sent"]) for d in digests] == [
        ("2026-01-12T08:00:00+00:00", ["ana@example.com", "ben@example.com"]),  # Mondays at 9 in Berlin
        ("2026-01-19T08:00:00+00:00", ["ana@example.com"]),  # Ben had a quiet week: no email
        ("2026-01-26T08:00:00+00:00", ["ana@example.com", "ben@example.com"]),
        ("2026-02-02T08:00:00+00:00", ["ana@example.com"]),
    ]
    assert len(example.mailer.sent) == 6 and len(set(example.mailer.sent)) == 6  # nobody got an email twice
    assert "6 emails in 4 digests" in capsys.readouterr().out
    assert example.app.functions == ["weekly-digest"]  # the app `tarry dev` serves has the same function
