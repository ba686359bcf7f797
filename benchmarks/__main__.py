"""Run Tarry's benchmarks and write their figures to benchmarks/results/.

python -m benchmarks report                       # everything, both stores, DBOS beside: docs/benchmarks.md
python -m benchmarks render                       # docs/benchmarks.md and .png again from results/report.json
python -m benchmarks engine --store sqlite        # ingest, park, resume, latency on one store
python -m benchmarks match --sizes 1000,100000    # match cost as waits grow
python -m benchmarks match --any --sizes 1000,100000  # the same, the runs in wait_for_any of two conditions
python -m benchmarks match --scanned              # one 450 KiB event against 100 scanned waits
python -m benchmarks workers --counts 1,2,4       # PostgreSQL with several worker processes
python -m benchmarks http --requests 500          # keep-alive latency and /metrics cost on a real tarry dev
python -m benchmarks flow --store postgresql      # runs/s under concurrency and throttle; a claim's cost as runs queue
python -m benchmarks bulk --runs 100000           # cancel_runs and rerun_runs over many runs; a run beside them
python -m benchmarks console --store sqlite       # the dashboard's requests, server time, at 100,000 runs
python -m benchmarks console-live --seconds 30    # the console's input latency while 200 runs/s change state
python -m benchmarks wake --runs 200              # SQLite: another process's send -> a tarry worker's first step
python -m benchmarks sdk --runs 1000              # SQLite: an Inngest SDK function beside the same in Tarry's API
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from benchmarks import bulk, console, console_live, engine, flow, http, match, report, sdk, wake, workers
from benchmarks.common import Backend, PostgresBackend, SQLiteBackend, machine

RESULTS = Path(__file__).parent / "results"
POSTGRES = os.environ.get("TARRY_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="workload", required=True)
    r = commands.add_parser("report", help="every workload on SQLite and PostgreSQL, DBOS beside; the docs page")
    r.add_argument("--runs", type=int, default=10_000, help="N of park and resume")
    r.add_argument("--latency-runs", type=int, default=200)
    r.add_argument("--ingest-events", type=int, default=20_000)
    r.add_argument("--memory-runs", type=int, default=100_000, help="runs waiting for the memory figures (0: skip)")
    r.add_argument("--match-sizes", default="1000,10000,100000,1000000", help="waiting runs, SQLite")
    r.add_argument("--pg-match-sizes", default="1000,10000,100000,1000000", help="waiting runs, PostgreSQL")
    r.add_argument("--samples", type=int, default=300, help="events routed per match size")
    r.add_argument("--repeat", type=int, default=3, help="runs of ingest/park/resume/latency; medians reported")
    r.add_argument("--postgres", default=POSTGRES, help="a database of the server to create the benchmark's in "
                   "('' to skip PostgreSQL)")  # fmt: skip
    r.add_argument("--flow-runs", type=int, default=10_000, help="N of the flow workload (0: skip it)")
    r.add_argument("--wake-runs", type=int, default=200, help="N of the cross-process pick-up (0: skip it)")
    r.add_argument("--cost-runs", type=int, default=2000, help="N of the database-cost workload (0: skip it)")
    r.add_argument("--workers-runs", type=int, default=2000, help="N of the worker-processes workload (0: skip it)")
    r.add_argument("--no-dbos", dest="dbos", action="store_false", help="skip the DBOS peer")
    r.add_argument("--dbos-runs", type=int, default=0, help="N of DBOS's park and resume (default: --runs)")
    commands.add_parser("render", help="write docs/benchmarks.md and .png again from results/report.json")
    e = commands.add_parser("engine", help="ingest, park, resume and latency on one store, in-process worker")
    e.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    e.add_argument("--runs", type=int, default=10_000)
    e.add_argument("--postgres", default=POSTGRES)
    m = commands.add_parser("match", help="cost of routing one event as the number of waiting runs grows")
    d = commands.add_parser("cost", help="what park and resume cost the PostgreSQL server per run")
    d.add_argument("--runs", type=int, default=2000)
    d.add_argument("--postgres", default=POSTGRES)
    m.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    m.add_argument("--sizes", default="1000,10000,100000", help="numbers of waiting runs (comma-separated)")
    m.add_argument("--samples", type=int, default=300, help="events routed per size")
    m.add_argument("--if-exp", action="store_true", help="wait with an if_exp (equality term + residual)")
    m.add_argument("--any", action="store_true", help="wait in wait_for_any of two conditions (match= each)")
    m.add_argument("--no-copy", dest="copy", action="store_false", help="park every waiting run through the "
                   "engine instead of copying a template's rows (slow: ~400 runs/s on PostgreSQL)")  # fmt: skip
    m.add_argument("--scanned", action="store_true", help="one 450 KiB event against 100 scanned waits instead")
    m.add_argument("--postgres", default=POSTGRES)
    w = commands.add_parser("workers", help="resume throughput on PostgreSQL with 1, 2, 4 worker processes")
    w.add_argument("--counts", default="1,2,4", help="numbers of worker processes (comma-separated)")
    w.add_argument("--runs", type=int, default=2000)
    w.add_argument("--admin-url", default=POSTGRES, help="a database to create the benchmark's in")
    h = commands.add_parser("http", help="keep-alive request latency and /metrics scrape cost, real tarry dev")
    h.add_argument("--requests", type=int, default=500, help="of GET /healthz and of POST /e/{key}, each")
    h.add_argument("--runs", type=int, default=20_000, help="waiting runs in the store when /metrics is scraped")
    h.add_argument("--scrapes", type=int, default=50)
    f = commands.add_parser("flow", help="runs/s under a concurrency limit and a throttle; a claim's cost, runs queued")
    f.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    f.add_argument("--runs", type=int, default=10_000)
    f.add_argument("--keys", type=int, default=1000, help="concurrency keys the runs are spread over")
    f.add_argument("--claim-sizes", default="10000,100000", help="runs queued behind full partitions")
    f.add_argument("--samples", type=int, default=200, help="claims timed per size")
    f.add_argument("--postgres", default=POSTGRES)
    b = commands.add_parser("bulk", help="cancel_runs and rerun_runs over many runs, and a probe run meanwhile")
    b.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    b.add_argument("--runs", type=int, default=100_000)
    b.add_argument("--postgres", default=POSTGRES)
    c = commands.add_parser("console", help="the server time of the dashboard's requests at 100,000 runs")
    c.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    c.add_argument("--runs", type=int, default=100_000, help="runs in the database (copies of a template)")
    c.add_argument("--samples", type=int, default=30, help="timed calls of each request")
    c.add_argument("--load-rate", type=int, default=200, help="runs started per second meanwhile, measured "
                   "again (0: skip)")  # fmt: skip
    c.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    c.add_argument("--postgres", default=POSTGRES)
    c = commands.add_parser("console-live", help="the console in Chromium while runs change state: input latency, "
                            "long tasks, the streams' server CPU")  # fmt: skip
    c.add_argument("--seconds", type=int, default=30, help="how long the runs change state (twice: without "
                   "the pages, then with them)")  # fmt: skip
    c.add_argument("--rate", type=int, default=200, help="runs changing state per second")
    c.add_argument("--waiting", type=int, default=600, help="runs waiting before the churn begins")
    k = commands.add_parser("wake", help="SQLite: send -> first step of a run, a tarry worker in another process; "
                            "its idle CPU")  # fmt: skip
    k.add_argument("--runs", type=int, default=200, help="events sent one at a time")
    k.add_argument("--idle-seconds", type=float, default=10, help="how long the idle worker's CPU is measured")
    k.add_argument("--stat", action="store_true", help="the watch's fallback where inotify is missing")
    s = commands.add_parser("sdk", help="SQLite: an Inngest SDK function with a wait_for_event, beside the same "
                            "in Tarry's API, each on a real tarry dev")  # fmt: skip
    s.add_argument("--runs", type=int, default=1000, help="N of park and resume")
    s.add_argument("--latency-runs", type=int, default=100, help="events sent one at a time")
    args = parser.parse_args()

    if args.workload == "report":
        report.run(args)
        return
    if args.workload == "render":
        report.render()
        return
    if args.workload == "console-live":
        print(f"the console in Chromium on a real tarry dev (SQLite), {args.rate} runs changing state a second:")
        result = {**console_live.run(args.seconds, args.rate, args.waiting), "machine": machine()}
    elif args.workload == "wake":
        print(f"pick-up across processes, SQLite, a tarry worker subprocess{' (stat fallback)' * args.stat}:")
        result = {**wake.run(args.runs, args.idle_seconds, args.stat), "machine": machine()}
    elif args.workload == "sdk":
        print(f"an Inngest SDK function beside Tarry's API, SQLite, a real tarry dev each, {args.runs} runs:")
        result = {**sdk.run(args.runs, args.latency_runs), "machine": machine(),
                  "command": "python -m benchmarks " + shlex.join(sys.argv[1:])}  # fmt: skip
    elif args.workload == "http":
        print("HTTP on a real tarry dev (SQLite), one keep-alive connection:")
        result = {"workload": "http", **http.run(args.requests, args.runs, args.scrapes), "machine": machine()}
    elif args.workload == "cost":
        print(f"the database's cost per run, PostgreSQL, {args.runs} runs parked then resumed:")
        result = {"workload": "cost-postgresql", **engine.cost_report(PostgresBackend(args.postgres), args.runs),
                  "machine": machine(args.postgres)}  # fmt: skip
    elif args.workload == "workers":
        print(f"{args.runs} runs waiting then resumed, PostgreSQL, by worker processes:")
        result = workers.run(args.admin_url, [int(c) for c in args.counts.split(",")], args.runs)
        result["machine"] = machine(args.admin_url)
    else:
        backend: Backend = SQLiteBackend() if args.store == "sqlite" else PostgresBackend(args.postgres)
        if args.workload == "engine":
            print(f"engine hot paths, {args.store}, {args.runs} runs:")
            result = {"workload": f"engine-{args.store}", **engine.run(backend, args.runs)}
        elif args.workload == "console":
            print(f"the console's requests, {args.store}, {args.runs:,} runs:")
            result = {"workload": f"console-{args.store}",
                      **console.run(backend, args.runs, args.samples, args.load_rate, args.keep)}  # fmt: skip
        elif args.workload == "bulk":
            print(f"bulk actions, {args.store}, {args.runs} runs:")
            result = {"workload": f"bulk-{args.store}", **bulk.run(backend, args.runs)}
        elif args.workload == "flow":
            print(f"flow control, {args.store}, {args.runs} runs over {args.keys} keys:")
            sizes = tuple(int(s) for s in args.claim_sizes.split(","))
            result = {"workload": f"flow-{args.store}", **flow.run(backend, args.runs, args.keys, sizes, args.samples)}
        elif args.scanned:
            print(f"one large event against the scanned bucket, {args.store}:")
            rows = [match.scanned(backend, reads=reads) for reads in match.SCANNED_IF]
            result = {"workload": f"match-scanned-{args.store}", "rows": rows}
        else:
            variant = "wait_for_any" if args.any else "if_exp" if args.if_exp else "match="
            print(f"match cost, {variant} waits, {args.store}:")
            rows = match.run(backend, [int(s) for s in args.sizes.split(",")], args.samples, args.if_exp, args.any,
                             args.copy)  # fmt: skip
            suffix = "-any" if args.any else "-if-exp" if args.if_exp else ""
            result = {"workload": f"match-{args.store}{suffix}", "rows": rows}
        result["machine"] = machine(args.postgres if args.store == "postgresql" else None)
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{result['workload']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    if args.workload == "flow":
        flow.render()
    if args.workload == "console":
        console.render()
    if args.workload == "console-live":
        console_live.render()


if __name__ == "__main__":
    main()
