"""The suite's own environment: no TARRY_* setting of the developer's shell reaches a test."""

from __future__ import annotations

import os

import tarry
from tarry._app import DEFAULT_DATABASE_URL
from tests.conftest import KEPT


def test_no_tarry_setting_of_the_shell_reaches_a_test() -> None:
    assert [name for name in os.environ if name.startswith("TARRY_") and name not in KEPT] == []
    assert tarry.Tarry("clean").database_url == DEFAULT_DATABASE_URL
