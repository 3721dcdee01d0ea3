"""Single-cell workflow: per-step seconds and peak memory at 5k / 20k / 50k simulated cells.

Each size runs in a fresh process (so peak RSS is that size's alone, and numba's one-off
compilation is paid by a warm-up on 4,500 cells first). Cells are simulated from the real
celltypist sample (see ``sparkbooks.singlecell.simulate``), 2 batches, Harmony on. The path is
whatever this machine takes (scanpy on CPU, rapids-singlecell on a working GPU).

    python benchmarks/single_cell_scaling.py [--sizes 5000,20000,50000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys
from sparkbooks import singlecell as scx
adata = scx.load_sample()
ref = scx.analyse(adata.copy(), seed=0)
reference = adata[ref.adata.obs_names, ref.adata.raw.var_names]
groups = ref.adata.obs["leiden"].to_numpy()
# warm-up above 4,096 cells so numba compiles both the exact and the pynndescent neighbour paths
scx.analyse(scx.simulate(reference, groups, n_cells=4500, n_batches=2, seed=1), batch_key="batch")
result = scx.analyse(scx.simulate(reference, groups, n_cells=int(sys.argv[1]), n_batches=2, seed=0), batch_key="batch")
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"backend": result.backend, "seconds": result.seconds, "peak_mb": peak_mb}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000,50000")
    args = parser.parse_args()
    results = {}
    for n in (int(s) for s in args.sizes.split(",")):
        done = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True)
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
        results[n] = json.loads(line[len("RESULT "):])
    steps = list(next(iter(results.values()))["seconds"])
    print(f"backend: {next(iter(results.values()))['backend']}")
    print(f"{'step':16}" + "".join(f"{n:>10,}" for n in results))
    for step in steps:
        print(f"{step:16}" + "".join(f"{r['seconds'][step]:10.2f}" for r in results.values()))
    print(f"{'total':16}" + "".join(f"{sum(r['seconds'].values()):10.2f}" for r in results.values()))
    print(f"{'peak MB':16}" + "".join(f"{r['peak_mb']:10.0f}" for r in results.values()))
    print(json.dumps({str(n): {"total_s": round(sum(r["seconds"].values()), 2), "peak_mb": round(r["peak_mb"])}
                      for n, r in results.items()}))


if __name__ == "__main__":
    main()
