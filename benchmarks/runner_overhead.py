"""What `sparkbooks run` costs on top of plain papermill, on the same notebook and parameters.

Both execute start-here with tiny data (so kernel start and execution dominate), three times
each, alternating; the table shows every run and the JSON line the medians and their ratio.

    python benchmarks/runner_overhead.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sparkbooks import catalog

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"repeat": 1}


PARAMS = {"n_rows": 1000, "n_samples": 1000, "profile": "cpu"}


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    pb = catalog.get("start-here")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pm_cmd = [sys.executable, "-m", "papermill", str(pb.path), str(Path(tmp) / "pm.ipynb"), "--cwd", str(pb.directory),
                  "-k", "python3", "--no-progress-bar"]
        for name, value in PARAMS.items():
            pm_cmd += ["-p", name, str(value)]
        sb_cmd = [sys.executable, "-m", "sparkbooks.cli", "run", "start-here", "--out", tmp, "--no-progress",
                  "--profile", "cpu", "-p", "n_rows", "1000", "-p", "n_samples", "1000"]
        for i in range(args.repeat):
            rows.append(("papermill", i, _time(pm_cmd)))
            rows.append(("sparkbooks run", i, _time(sb_cmd)))
    print(f"{'runner':16} {'try':>3} {'seconds':>8}")
    for name, i, s in rows:
        print(f"{name:16} {i:3d} {s:8.2f}")
    pm = statistics.median(s for n, _, s in rows if n == "papermill")
    ours = statistics.median(s for n, _, s in rows if n != "papermill")
    print(json.dumps({"papermill_s": round(pm, 2), "sparkbooks_s": round(ours, 2), "overhead_ratio": round(ours / pm, 3)}))


if __name__ == "__main__":
    main()
