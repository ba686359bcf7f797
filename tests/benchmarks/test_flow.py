"""The flow workloads work end to end on small sizes (their figures are reported, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import flow
from benchmarks.common import SQLiteBackend


def test_flow_workloads_report_every_figure() -> None:
    figures = flow.run(SQLiteBackend(), runs=60, keys=6, sizes=(20, 60), samples=5, partitions=10)
    for variant in flow.VARIANTS:
        assert figures[f"{variant}_per_s"] > 0, variant
    assert [row["queued"] for row in figures["claim"]] == [20, 60]
    assert figures["claim"][0]["claim_ratio_to_smallest"] == 1.0
    assert all(row["claim_p50_ms"] > 0 and row["empty_p50_ms"] > 0 for row in figures["claim"])
    assert all(row["hold_us_per_run"] > 0 for row in figures["claim"])


def test_the_flow_figures_render_between_their_markers(tmp_path: Path) -> None:
    claim = {"queued": 10_000, "hold_us_per_run": 30.0, "claim_p50_ms": 1.0, "claim_p99_ms": 2.0, "claim_ratio_to_smallest": 1.0,
             "empty_p50_ms": 0.5, "empty_p99_ms": 0.7, "empty_ratio_to_smallest": 1.0}  # fmt: skip
    figures = {"runs": 10_000, "keys": 1000, "plain_per_s": 2000.0, "concurrency_per_s": 1500.0,
               "concurrency_throttle_per_s": 1400.0, "claim": [claim], "when": "2026-01-01T00:00:00Z",
               "machine": {"cpus": 2, "tarry": "0.1", "sqlite": "3.40"}}  # fmt: skip
    (tmp_path / "flow-sqlite.json").write_text(json.dumps(figures))
    doc = tmp_path / "benchmarks.md"
    doc.write_text("intro\n<!-- flow -->\nstale figures\n<!-- /flow -->\noutro\n")
    flow.render(results=tmp_path, doc=doc)
    page = doc.read_text()
    assert page.startswith("intro\n") and page.endswith("outro\n") and "stale figures" not in page
    assert "| sqlite | 10,000 over 1,000 | 2,000 | 1,500 | 1,400 |" in page
    assert "| sqlite | 10,000 | 30 µs | 1.000 ms | 2.000 ms | 1.00 | 0.500 ms | 0.700 ms | 1.00 |" in page
