"""CPU vs GPU (cudf.pandas + cuml.accel) on the start-here workloads, same data, one run.

Prints a table, then one JSON line. Without a working GPU the GPU columns are null: the
benchmark reports what it measured and nothing else.

    python benchmarks/start_here_acceleration.py [--rows 2000000] [--samples 50000]
"""

from __future__ import annotations

import argparse
import json

from sparkbooks.hardware import detect
from sparkbooks.workloads import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--samples", type=int, default=50_000)
    args = parser.parse_args()
    runs = {
        "pandas-etl": compare("pandas-etl", {"n_rows": args.rows, "seed": 0}),
        "sklearn": compare("sklearn", {"n_samples": args.samples, "seed": 0}),
    }
    print(f"machine: {detect().summary()}")
    print(f"{'workload':12} {'stage':24} {'cpu_s':>9} {'gpu_s':>9} {'speedup':>8}")
    for name, cmp in runs.items():
        for stage, row in cmp.table().iterrows():
            gpu = row.get("gpu_s")
            spd = row.get("speedup")
            print(f"{name:12} {stage:24} {row['cpu_s']:9.3f} {gpu if gpu is not None else '—':>9} "
                  f"{spd if spd is not None else '—':>8}")
        print(f"{'':12} {cmp.gpu_reason}")
    headline = {
        "n_rows": args.rows, "n_samples": args.samples,
        **{f"{k.replace('-', '_')}_cpu_s": round(c.cpu["total_s"], 3) for k, c in runs.items()},
        **{f"{k.replace('-', '_')}_gpu_s": round(c.gpu["total_s"], 3) if c.gpu else None for k, c in runs.items()},
        **{f"{k.replace('-', '_')}_speedup": round(c.speedup, 2) if c.gpu else None for k, c in runs.items()},
    }
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
