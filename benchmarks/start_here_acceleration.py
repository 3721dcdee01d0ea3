"""CPU vs GPU (cudf.pandas + cuml.accel) on the start-here workloads, same data, in one run.

Prints a table per workload (cold and warm-median seconds per stage, speed-up, GPU calls and CPU
fallbacks), then one JSON line. Without a working GPU the GPU columns are absent and the JSON's
GPU figures null: the benchmark reports what it measured and nothing else.

    python benchmarks/start_here_acceleration.py [--rows 2000000] [--samples 50000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from sparkbooks.hardware import detect
from sparkbooks.dataframes import compare


SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"rows": 20_000, "samples": 2_000, "repeats": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    runs = {
        "pandas-etl": compare("pandas-etl", {"n_rows": args.rows, "seed": 0, "repeats": args.repeats}),
        "sklearn": compare("sklearn", {"n_samples": args.samples, "seed": 0, "repeats": args.repeats}),
    }
    print(f"machine: {detect().summary()}")
    with pd.option_context("display.width", 200, "display.max_columns", 12):
        for name, cmp in runs.items():
            print(f"\n== {name}: {cmp.gpu_reason}")
            print(cmp.table().drop(columns=["accelerated", "fell_back"], errors="ignore").to_string())
            for problem in cmp.problems():
                print(f"   PROBLEM: {problem}")
    headline = {"n_rows": args.rows, "n_samples": args.samples, "repeats": args.repeats}
    for k, c in runs.items():
        key = k.replace("-", "_")
        headline |= {f"{key}_cpu_s": round(c.cpu["total_s"], 3), f"{key}_cpu_cold_s": round(c.cpu["total_cold_s"], 3),
                     f"{key}_gpu_s": round(c.gpu["total_s"], 3) if c.gpu else None,
                     f"{key}_speedup": round(c.speedup, 2) if c.gpu else None,
                     f"{key}_problems": len(c.problems())}
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
