"""Run Tarry's benchmarks and write their figures to benchmarks/results/.

python -m benchmarks match --sizes 1000,10000,100000
python -m benchmarks match --if-exp
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks import engine, match, workers
from benchmarks.common import machine, temp_folder

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="workload", required=True)
    m = commands.add_parser("match", help="cost of routing one event as the number of waiting runs grows")
    m.add_argument("--sizes", default="1000,10000,100000", help="numbers of waiting runs (comma-separated)")
    m.add_argument("--samples", type=int, default=300, help="events routed per size")
    m.add_argument("--if-exp", action="store_true", help="wait with an if_exp (equality term + residual)")
    e = commands.add_parser("engine", help="ingest, park, resume, latency and memory on SQLite, in-process worker")
    e.add_argument("--runs", type=int, default=10_000)
    w = commands.add_parser("workers", help="resume throughput on PostgreSQL with 1, 2, 4 worker processes")
    w.add_argument("--counts", default="1,2,4", help="numbers of worker processes (comma-separated)")
    w.add_argument("--runs", type=int, default=2000)
    w.add_argument("--admin-url", default=os.environ.get("TARRY_TEST_POSTGRES_URL",
                   "postgresql://root@127.0.0.1:5432/postgres"), help="a database to create the benchmark's in")  # fmt: skip
    args = parser.parse_args()

    if args.workload == "match":
        print(f"match cost, {'if_exp' if args.if_exp else 'match='} waits, SQLite:")
        result = match.run([int(s) for s in args.sizes.split(",")], args.samples, args.if_exp)
    elif args.workload == "engine":
        print(f"engine hot paths, SQLite, {args.runs} runs:")
        result = engine.run(engine.sqlite(temp_folder()), args.runs)
    else:
        print(f"{args.runs} runs waiting then resumed, PostgreSQL, by worker processes:")
        result = workers.run(args.admin_url, [int(c) for c in args.counts.split(",")], args.runs)
    result["machine"] = machine()
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{result['workload']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
