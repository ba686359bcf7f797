"""Prometheus metrics of one app: counted in-process, or read from the store when scraped.

Each app has its own registry (never the process-wide default), so two apps
in one process, or one test after another, do not share counts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from tarry._model import QueuedReason, RunStatus
from tarry._store.base import Counts

SKIPPED_HELP = "Events a function started no run for, by reason (rate_limit, idempotency, singleton); from the store."


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_received = Counter(
            "tarry_events_received", "Events accepted by this process (send, notify, HTTP).", registry=self.registry
        )
        self.step_duration = Histogram(
            "tarry_step_duration_seconds", "Wall-clock time of step bodies run by this process.", ["kind"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60), registry=self.registry,
        )  # fmt: skip
        #: the series of step.run's bodies: it exists before the first step, and each step observes it directly
        self.run_step_duration = self.step_duration.labels("run")
        self.runs = Gauge("tarry_runs", "Runs in the store by status.", ["status"], registry=self.registry)
        self.open_waits = Gauge("tarry_open_waits", "Open waits in the store.", registry=self.registry)
        self.scanned_waits = Gauge(
            "tarry_scanned_waits", "Open waits with no index term (checked against every event of their name).",
            registry=self.registry,
        )  # fmt: skip
        self.dead_letters = Gauge(
            "tarry_dead_letters", "Rows set aside after failing again and again (GET /api/v1/dead-letters lists them).",
            registry=self.registry,
        )  # fmt: skip
        self.queued = Gauge(
            "tarry_runs_queued", "Queued runs held back by flow control, by reason (concurrency, throttle).", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.skipped = _Skipped()
        self.registry.register(self.skipped)

    def render(self, counts: Counts) -> bytes:
        """The Prometheus text of every metric, with the store's counts as they are now."""
        for status in RunStatus:
            self.runs.labels(status.value).set(counts.runs.get(status.value, 0))
        for reason in QueuedReason:
            self.queued.labels(reason.value).set(counts.queued.get(reason.value, 0))
        self.skipped.counts = counts.skipped
        self.open_waits.set(counts.open_waits)
        self.scanned_waits.set(counts.scanned_waits)
        self.dead_letters.set(counts.dead_letters)
        return generate_latest(self.registry)


class _Skipped(Collector):
    """``tarry_runs_skipped_total``: the store's own count (kept as events are skipped), so every process
    scraped reports the same numbers; a series appears with its first skip."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("tarry_runs_skipped", SKIPPED_HELP, labels=["function_id", "reason"])
        for (function_id, reason), n in sorted(self.counts.items()):
            family.add_metric([function_id, reason], n)
        yield family
