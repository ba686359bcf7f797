"""The published report: every workload on SQLite and PostgreSQL, DBOS beside Tarry, one table and one plot.

``python -m benchmarks report`` runs it all and writes ``benchmarks/results/report.json``,
``docs/benchmarks.md`` and ``docs/benchmarks.png``; ``python -m benchmarks render`` writes the
last two again from the JSON.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import engine, flow, match, wake, workers
from benchmarks.common import Backend, PostgresBackend, SQLiteBackend, machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "report.json"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.png"

#: the targets, as (figure, comparison, bound) per store; checked in the report, never in tests
TARGETS: dict[str, list[tuple[str, str, float]]] = {
    "sqlite": [("latency_p50_ms", "<=", 1.5), ("latency_p99_ms", "<=", 10), ("resume_per_s", ">=", 4000),
               ("park_per_s", ">=", 4000), ("ingest_batch100_per_s", ">=", 25_000),
               ("rss_added_mib", "<=", 50)],
    "postgresql": [("latency_p50_ms", "<=", 3), ("latency_p99_ms", "<=", 15), ("resume_per_s", ">=", 1500),
                   ("park_per_s", ">=", 2000), ("ingest_batch100_per_s", ">=", 10_000)],
}  # fmt: skip
#: the database's cost per resumed run on PostgreSQL (``benchmarks cost``)
COST_TARGETS = [("transactions_per_run", "<=", 3), ("statements_per_run", "<=", 12),
                ("server_cpu_us_per_run", "<=", 150)]  # fmt: skip


def run(options: Any) -> dict[str, Any]:
    began = time.perf_counter()
    report: dict[str, Any] = {"machine": machine(options.postgres), "command": "python -m benchmarks " + shlex.join(sys.argv[1:]),
                              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stores": {}}  # fmt: skip
    backends: list[Backend] = [SQLiteBackend()]
    if options.postgres:
        backends.append(PostgresBackend(options.postgres))
    for backend in backends:
        figures: dict[str, Any] = {}
        report["stores"][backend.name] = figures
        print(f"Tarry on {backend.name}: ingest, park, resume, latency, memory", flush=True)
        figures["tarry"] = _median_of(
            options.repeat, functools.partial(engine.run, backend, options.runs, options.latency_runs,
                                              options.ingest_events)
        )  # fmt: skip
        if options.memory_runs:
            print(f"Tarry on {backend.name}: memory with {options.memory_runs:,} runs waiting", flush=True)
            figures["tarry"].update(engine.memory_report(backend, options.memory_runs))
        sizes = options.match_sizes if backend.name == "sqlite" else options.pg_match_sizes
        for if_exp in (False, True):
            key = "match_if_exp" if if_exp else "match"
            print(f"Tarry on {backend.name}: match cost, {'if_exp' if if_exp else 'match='} waits", flush=True)
            figures[key] = match.run(backend, [int(s) for s in sizes.split(",")], options.samples, if_exp)
        if backend.name == "sqlite" and options.wake_runs:
            print("Tarry on sqlite: another process's send -> a tarry worker's first step", flush=True)
            figures["wake"] = wake.run(options.wake_runs, 10)
        if backend.name == "postgresql" and options.cost_runs:
            print(f"Tarry on {backend.name}: the database's cost per run", flush=True)
            figures["cost"] = engine.cost_report(backend, options.cost_runs)
        if backend.name == "postgresql" and options.workers_runs:
            print(f"Tarry on {backend.name}: 1, 2 and 4 worker processes", flush=True)
            figures["workers"] = workers.run(options.postgres, [1, 2, 4], options.workers_runs)["rows"]
        if options.flow_runs:
            print(f"Tarry on {backend.name}: flow control", flush=True)
            flow.save(backend.name, flow.run(backend, options.flow_runs), report["machine"])
        if options.dbos:
            from benchmarks import peer_dbos

            print(f"DBOS on {backend.name}: park, resume, latency", flush=True)
            url = backend.fresh("dbos") if backend.name == "sqlite" else options.postgres
            figures["dbos"] = peer_dbos.measure(url, options.dbos_runs or options.runs, options.latency_runs)
            print(f"    {figures['dbos']}", flush=True)
        backend.clean()
        _save(report)
    report["seconds"] = round(time.perf_counter() - began)
    _save(report)
    render(report)
    return report


def _median_of(times: int, measure: Any) -> dict[str, Any]:
    """Each figure's median over ``times`` runs of ``measure`` (this machine's figures move ±20 % run to run)."""
    results = [measure() for _ in range(times)]
    merged: dict[str, Any] = {}
    for key in results[0]:
        values = sorted(r[key] for r in results)
        merged[key] = values[len(values) // 2]
    merged["repeats"] = times
    return merged


def _save(report: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


# -- rendering ----------------------------------------------------------------

ROWS = [
    ("ingest, single events (events/s)", "ingest_single_per_s", "{:,.0f}"),
    ("ingest, batches of 100 (events/s)", "ingest_batch100_per_s", "{:,.0f}"),
    ("park: runs started and parked (runs/s)", "park_per_s", "{:,.0f}"),
    ("resume: N events sent, N runs completed (runs/s)", "resume_per_s", "{:,.0f}"),
    ("latency p50 (ms)", "latency_p50_ms", "{:,.2f}"),
    ("latency p90 (ms)", "latency_p90_ms", "{:,.2f}"),
    ("latency p99 (ms)", "latency_p99_ms", "{:,.2f}"),
    ("RSS idle (MiB)", "rss_idle_mib", "{:,.1f}"),
    ("RSS added by the memory runs waiting (MiB; Tarry: 100,000 runs)", "rss_added_mib", "{:,.1f}"),
    ("RSS added per waiting run (KiB)", "rss_per_waiting_run_kib", "{:,.3f}"),
    ("on disk per waiting run (bytes)", "disk_bytes_per_waiting_run", "{:,.0f}"),
    ("N of park and resume", "runs", "{:,}"),
]
HIGHER_IS_BETTER = {"ingest_single_per_s", "ingest_batch100_per_s", "park_per_s", "resume_per_s"}


def _cell(value: Any, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _derive(report: dict[str, Any]) -> None:
    """Figures computed from others: the memory a waiting run adds, for Tarry and DBOS alike."""
    for figures in report["stores"].values():
        tarry, dbos = figures.get("tarry", {}), figures.get("dbos", {})
        if tarry.get("memory_runs"):
            tarry["rss_per_waiting_run_kib"] = tarry["rss_added_mib"] * 1024 / tarry["memory_runs"]
        if dbos.get("runs") and "rss_waiting_mib" in dbos:
            dbos["rss_per_waiting_run_kib"] = (dbos["rss_waiting_mib"] - dbos["rss_idle_mib"]) * 1024 / dbos["runs"]


def table(report: dict[str, Any]) -> str:
    """The main table: Tarry and DBOS on each store, with the Tarry / DBOS ratio."""
    _derive(report)
    stores = list(report["stores"])
    head = "| figure |" + "".join(f" {s}: Tarry | {s}: DBOS | Tarry / DBOS |" for s in stores)
    lines = [head, "| --- |" + " ---: | ---: | ---: |" * len(stores)]
    for label, key, fmt in ROWS:
        cells = []
        for store in stores:
            tarry_value = report["stores"][store].get("tarry", {}).get(key)
            dbos_value = report["stores"][store].get("dbos", {}).get(key)
            ratio = ""
            if tarry_value and dbos_value and key != "runs":
                ratio = f"{tarry_value / dbos_value:,.3g}"
            cells += [_cell(tarry_value, fmt), _cell(dbos_value, fmt), ratio]
        if any(cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def match_table(report: dict[str, Any]) -> str:
    lines = ["| store | waits | waiting runs | route one event p50 | p90 | p99 | p50 / p50 at the smallest |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for store, figures in report["stores"].items():
        for key, label in (("match", "`match=`"), ("match_if_exp", "`if_exp` (term + residual)")):
            for row in figures.get(key, []):
                lines.append(f"| {store} | {label} | {row['waiting']:,} | {row['p50']:.3f} ms | {row['p90']:.3f} ms "
                             f"| {row['p99']:.3f} ms | {row['ratio_to_smallest']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def targets(report: dict[str, Any]) -> str:
    lines = ["| store | figure | target | measured | met |", "| --- | --- | --- | ---: | --- |"]
    for store, checks in TARGETS.items():
        figures = report["stores"].get(store, {}).get("tarry", {})
        for key, op, bound in checks:
            value = figures.get(key)
            if value is None:
                continue
            met = value <= bound if op == "<=" else value >= bound
            lines.append(f"| {store} | `{key}` | {op} {bound:,} | {value:,.2f} | {'yes' if met else 'no'} |")
        if store == "postgresql":
            lines += _cost_targets(report["stores"].get(store, {}))
        pick_up = report["stores"].get(store, {}).get("wake", {}).get("pick_up_ms", {}).get("p50")
        if pick_up is not None:
            lines.append(
                f"| {store} | cross-process pick-up p50 (ms) | <= 10 | {pick_up:,.2f} | {_check('<=', pick_up, 10)} |"
            )
        rows = report["stores"].get(store, {}).get("match", [])
        if rows:
            ratio = rows[-1]["ratio_to_smallest"]
            lines.append(f"| {store} | match p50 at {rows[-1]['waiting']:,} / at {rows[0]['waiting']:,} | <= 2 "
                         f"| {ratio:.2f} | {'yes' if ratio <= 2 else 'no'} |")  # fmt: skip
    return "\n".join(lines)


def _check(op: str, value: float, bound: float) -> str:
    return "yes" if (value <= bound if op == "<=" else value >= bound) else "no"


def _cost_targets(figures: dict[str, Any]) -> list[str]:
    lines = []
    resume = figures.get("cost", {}).get("resume", {})
    for key, op, bound in COST_TARGETS:
        if key in resume:
            lines.append(f"| postgresql | `{key}` (resume) | {op} {bound:,} | {resume[key]:,.2f} "
                         f"| {_check(op, resume[key], bound)} |")  # fmt: skip
    rows = {r["workers"]: r for r in figures.get("workers", [])}
    if 1 in rows and 2 in rows:
        ratio = rows[2]["resume_per_s"] / rows[1]["resume_per_s"]
        lines.append(
            f"| postgresql | resume, 2 worker processes / 1 | >= 1.3 | {ratio:.2f} | {_check('>=', ratio, 1.3)} |"
        )
    if 2 in rows and 4 in rows:
        ratio = rows[4]["resume_per_s"] / rows[2]["resume_per_s"]
        lines.append(f"| postgresql | resume, 4 worker processes / 2 | >= 1 | {ratio:.2f} | {_check('>=', ratio, 1)} |")
    return lines


def cost_table(report: dict[str, Any]) -> str:
    """What each parked and resumed run costs the PostgreSQL server."""
    cost = report["stores"].get("postgresql", {}).get("cost")
    if not cost:
        return ""
    lines = ["| per run | transactions | statements | round trips | server CPU (µs) | WAL (bytes) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for phase in ("park", "resume"):
        f = cost[phase]
        lines.append(f"| {phase} | {f['transactions_per_run']:.2f} | {f['statements_per_run']:.1f} "
                     f"| {f['round_trips_per_run']:.1f} | {f['server_cpu_us_per_run']:,.0f} "
                     f"| {f['wal_bytes_per_run']:,.0f} |")  # fmt: skip
    return "\n".join(lines)


def wake_line(report: dict[str, Any]) -> str:
    w = report["stores"].get("sqlite", {}).get("wake")
    if not w:
        return "(not measured in this run)"
    p = w["pick_up_ms"]
    return (f"A `tarry worker` process on the SQLite file, events sent one at a time by another process "
            f"({w['runs']} runs): send -> the run's first step p50 {p['p50']:.1f} ms, p90 {p['p90']:.1f} ms, "
            f"p99 {p['p99']:.1f} ms; the worker idle: {w['idle_cpu_percent']:.2f} % of one core "
            "(`python -m benchmarks wake`).")  # fmt: skip


def workers_table(report: dict[str, Any]) -> str:
    rows = report["stores"].get("postgresql", {}).get("workers")
    if not rows:
        return ""
    one = rows[0]["resume_per_s"]
    lines = ["| worker processes | parked/s | resumed and completed/s | resume, times one worker "
             "| server CPU per resume (µs) |", "| ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['workers']} | {r['park_per_s']:,} | {r['resume_per_s']:,} | {r['resume_per_s'] / one:.2f} "
                     f"| {r.get('server_cpu_us_per_resume', 0):,.0f} |")  # fmt: skip
    return "\n".join(lines)


def plot(report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = list(report["stores"])
    fig, (ax_rate, ax_latency, ax_match) = plt.subplots(1, 3, figsize=(16, 5))
    labels, tarry_rates, dbos_rates = [], [], []
    for store in stores:
        for key, what in (("park_per_s", "park"), ("resume_per_s", "resume")):
            labels.append(f"{what}\n{store}")
            tarry_rates.append(report["stores"][store].get("tarry", {}).get(key, 0))
            dbos_rates.append(report["stores"][store].get("dbos", {}).get(key, 0))
    _bars(ax_rate, labels, tarry_rates, dbos_rates)
    ax_rate.set_yscale("log")
    ax_rate.set_ylabel("runs per second (log scale)")
    ax_rate.set_title("Throughput: park and resume")
    labels, tarry_lat, dbos_lat = [], [], []
    for store in stores:
        for key, what in (("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")):
            labels.append(f"{what}\n{store}")
            tarry_lat.append(report["stores"][store].get("tarry", {}).get(key, 0))
            dbos_lat.append(report["stores"][store].get("dbos", {}).get(key, 0))
    _bars(ax_latency, labels, tarry_lat, dbos_lat)
    ax_latency.set_yscale("log")
    ax_latency.set_ylabel("ms, event sent -> resumed run's next step (log scale)")
    ax_latency.set_title("Latency with 200 runs waiting")
    for store in stores:
        for key, style in (("match", "-o"), ("match_if_exp", "--s")):
            rows = report["stores"][store].get(key, [])
            if rows:
                ax_match.plot([r["waiting"] for r in rows], [r["p50"] for r in rows], style,
                              label=f"{store}, {'if_exp' if key == 'match_if_exp' else 'match='}")  # fmt: skip
    ax_match.set_xscale("log")
    ax_match.set_yscale("log")
    ax_match.set_xlabel("runs waiting on the event name (log scale)")
    ax_match.set_ylabel("ms to route one event, p50 (log scale)")
    ax_match.set_title("Match cost")
    ax_match.legend()
    fig.suptitle(f"Tarry {report['machine']['tarry']} vs DBOS Transact, {report['machine']['cpus']} cores, "
                 f"{report['when'][:10]}")  # fmt: skip
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


def _bars(ax: Any, labels: list[str], tarry_values: list[float], dbos_values: list[float]) -> None:
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], tarry_values, width=0.4, label="Tarry")
    ax.bar([x + 0.2 for x in xs], dbos_values, width=0.4, label="DBOS")
    for x, value in zip(xs, tarry_values, strict=True):
        ax.annotate(f"{value:,.0f}" if value >= 10 else f"{value:.1f}", (x - 0.2, value), ha="center", fontsize=7)
    for x, value in zip(xs, dbos_values, strict=True):
        if value:
            ax.annotate(f"{value:,.0f}" if value >= 10 else f"{value:.1f}", (x + 0.2, value), ha="center", fontsize=7)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.legend()


def render(report: dict[str, Any] | None = None) -> None:
    """Write docs/benchmarks.md (its figures between the markers) and docs/benchmarks.png."""
    report = report or json.loads(RESULTS.read_text())
    plot(report)
    m = report["machine"]
    dbos: dict[str, Any] = next((f["dbos"] for f in report["stores"].values() if "dbos" in f), {})
    runs = next(iter(report["stores"].values())).get("tarry", {}).get("runs", 0)
    generated = "\n\n".join([
        f"Measured {report['when']} with `{report['command']}` ({report.get('seconds', '?')} s in all) on "
        f"{m['cpus']} cores, {m['platform']}, Python {m['python']}, SQLite {m.get('sqlite', '?')}, "
        f"PostgreSQL {m.get('postgresql', '?')}; Tarry {m['tarry']}, DBOS Transact {dbos.get('dbos_version', '?')}.",
        table(report), "Tarry / DBOS: above 1 is Tarry ahead for rates; below 1 is Tarry ahead for latency and "
        f"memory. N of park and resume: Tarry {runs:,}, DBOS {dbos.get('runs', runs):,}.",
        "### Match cost", match_table(report),
        "### The database's cost per run (PostgreSQL)", cost_table(report) or "(not measured in this run)",
        "### Worker processes (PostgreSQL)", workers_table(report) or "(not measured in this run)",
        "### Cross-process pick-up (SQLite)", wake_line(report),
        "### Targets", targets(report),
    ])  # fmt: skip
    text = DOC.read_text() if DOC.exists() else "<!-- figures -->\n<!-- /figures -->\n"
    head, _, rest = text.partition("<!-- figures -->")
    _, _, tail = rest.partition("<!-- /figures -->")
    DOC.write_text(f"{head}<!-- figures -->\n{generated}\n<!-- /figures -->{tail}")
    print(f"written {DOC} and {PLOT}")
    flow.render(doc=DOC)
