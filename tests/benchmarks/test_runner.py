"""The benchmark runner works end to end on small sizes (its figures are reported, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bulk, engine, match, report
from benchmarks.common import SQLiteBackend


def test_engine_workloads_report_every_figure() -> None:
    backend = SQLiteBackend()
    figures = engine.run(backend, runs=40, latency_runs=10, ingest_events=200)
    for key in ("ingest_single_per_s", "ingest_batch100_per_s", "park_per_s", "resume_per_s", "latency_p50_ms",
                "latency_p90_ms", "latency_p99_ms"):  # fmt: skip
        assert figures[key] > 0, key
    memory = engine.memory_report(backend, 50)
    assert memory["rss_waiting_mib"] > 0 and memory["disk_bytes_per_waiting_run"] > 0


def test_the_bulk_workload_reports_every_figure() -> None:
    figures = bulk.run(SQLiteBackend(), runs=300)
    for name in ("cancel_runs", "rerun_runs"):
        assert figures[name]["runs"] == 300 and figures[name]["pages"] == 2, name
        assert figures[name]["probes"] >= 1 and figures[name]["probe_p50_ms"] > 0, name
    assert figures["probe_quiet_p50_ms"] > 0


def test_match_cost_grows_the_same_database_and_routes_to_waiting_runs() -> None:
    rows = match.run(SQLiteBackend(), [20, 60], samples=10, if_exp=True)
    assert [r["waiting"] for r in rows] == [20, 60]
    assert rows[0]["ratio_to_smallest"] == 1.0 and all(r["p50"] > 0 for r in rows)


def test_keys_sampled_for_routing_skip_runs_already_resumed() -> None:
    first = match._spread(20, 10, set())
    second = match._spread(60, 30, set(first))
    assert len(set(second)) == 30 and not set(first) & set(second)


def test_the_report_renders_a_table_and_a_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(report, "PLOT", tmp_path / "benchmarks.png")
    (tmp_path / "benchmarks.md").write_text("intro\n<!-- figures -->\nold\n<!-- /figures -->\noutro\n")
    tarry_figures = {"park_per_s": 3000.0, "resume_per_s": 2500.0, "latency_p50_ms": 1.5, "latency_p99_ms": 4.0}
    cost = {
        "transactions_per_run": 0.2,
        "statements_per_run": 10.0,
        "round_trips_per_run": 10.5,
        "server_cpu_us_per_run": 900.0,
        "wal_bytes_per_run": 5000.0,
    }
    row = {"waiting": 1000, "p50": 1.0, "p90": 1.2, "p99": 2.0, "ratio_to_smallest": 1.0}
    data: dict[str, Any] = {
        "machine": {"cpus": 2, "platform": "linux", "python": "3.11", "tarry": "0.1", "sqlite": "3.40"},
        "command": "python -m benchmarks report", "when": "2026-01-01T00:00:00Z",
        "stores": {"sqlite": {"tarry": tarry_figures, "match": [row], "match_if_exp": [row],
                              "dbos": {"park_per_s": 50.0, "resume_per_s": 40.0, "latency_p50_ms": 1000.0,
                                       "latency_p99_ms": 1010.0, "dbos_version": "3.4.0"}},
                   "postgresql": {"cost": {phase: cost for phase in ("park", "resume")},
                                  "workers": [{"workers": w, "park_per_s": 100 * w, "resume_per_s": 100 + 20 * w,
                                               "server_cpu_us_per_resume": 900} for w in (1, 2, 4)]}},
    }  # fmt: skip
    report.render(json.loads(json.dumps(data)))
    page = (tmp_path / "benchmarks.md").read_text()
    assert page.startswith("intro\n") and page.endswith("outro\n") and "old" not in page
    assert "| park: runs started and parked (runs/s) | 3,000 | 50 | 60 |" in page
    assert "| latency p50 (ms) | 1.50 | 1,000.00 | 0.0015 |" in page
    assert "| sqlite | `park_per_s` | >= 4,000 | 3,000.00 | no |" in page
    assert "| sqlite | `latency_p50_ms` | <= 1.5 | 1.50 | yes |" in page
    assert "| resume | 0.20 | 10.0 | 10.5 | 900 | 5,000 |" in page
    assert "| postgresql | `statements_per_run` (resume) | <= 12 | 10.00 | yes |" in page
    assert "| postgresql | `server_cpu_us_per_run` (resume) | <= 150 | 900.00 | no |" in page
    assert "| 4 | 400 | 180 | 1.50 | 900 |" in page
    assert "| postgresql | resume, 2 worker processes / 1 | >= 1.3 | 1.17 | no |" in page
    assert (tmp_path / "benchmarks.png").stat().st_size > 10_000
