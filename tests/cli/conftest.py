"""The CLI tests stop every server and worker they started, also when an assertion failed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.commands import STARTED, stop


@pytest.fixture(autouse=True)
def stop_started() -> Iterator[None]:
    yield
    while STARTED:
        stop(STARTED.pop())
