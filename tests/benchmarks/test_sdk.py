"""The SDK workload works end to end on a small size (its figures are reported, never asserted)."""

from __future__ import annotations

from benchmarks import sdk


def test_the_sdk_workload_reports_every_figure_for_both_sides() -> None:
    figures = sdk.run(runs=20, latency_runs=5)
    for side in ("sdk", "tarry"):
        for key in ("park_per_s", "resume_per_s", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
                    "cpu_ms_per_run", "tarry_cpu_ms_per_run"):  # fmt: skip
            assert figures[side][key] > 0, (side, key)
