"""The flow workloads work end to end on small sizes (their figures are reported, never asserted)."""

from __future__ import annotations

from benchmarks import flow
from benchmarks.common import SQLiteBackend


def test_flow_workloads_report_every_figure() -> None:
    figures = flow.run(SQLiteBackend(), runs=60, keys=6, sizes=(20, 60), samples=5, partitions=10)
    for variant in flow.VARIANTS:
        assert figures[f"{variant}_per_s"] > 0, variant
    assert [row["queued"] for row in figures["claim"]] == [20, 60]
    assert figures["claim"][0]["claim_ratio_to_smallest"] == 1.0
    assert all(row["claim_p50_ms"] > 0 and row["empty_p50_ms"] > 0 for row in figures["claim"])
