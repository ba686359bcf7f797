"""The worker lease: its default, and how a setting of TARRY_WORKER_LEASE is read."""

from __future__ import annotations

import pytest

from tarry._engine.worker import lease_ms


def test_the_default_lease_is_fifteen_seconds_so_a_dead_workers_runs_move_within_about_twenty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TARRY_WORKER_LEASE", raising=False)
    assert lease_ms() == 15_000  # a heartbeat every 5 s; another worker requeues after 15-20 s


def test_a_lease_set_in_the_environment_replaces_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARRY_WORKER_LEASE", "45s")
    assert lease_ms() == 45_000
