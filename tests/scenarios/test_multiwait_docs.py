"""The guide's chapter on waiting for several things at once: every sample runs as written, on both stores."""

from __future__ import annotations

import pytest

import tarry
from tarry.testing import VirtualClock
from tests.scenarios.test_flow_docs import chapter_samples, run_sample, sample_id

SAMPLES = chapter_samples("Waiting for several things at once")


def test_the_chapter_has_its_three_samples() -> None:
    assert len(SAMPLES) == 3


@pytest.mark.parametrize(("line", "sample"), SAMPLES, ids=[sample_id(line, sample) for line, sample in SAMPLES])
async def test_every_sample_of_the_chapter_runs(line: int, sample: str, app: tarry.Tarry, clock: VirtualClock) -> None:
    await run_sample(line, sample, app, clock)
