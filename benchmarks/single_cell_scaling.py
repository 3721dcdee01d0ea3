"""Single-cell at NVIDIA's size: their notebook's step list on 20k / 50k / 216,382 simulated cells, every step timed.

The cells are simulated from the real celltypist sample (``sparkbooks.singlecell.simulate``: a
negative-binomial fit per cell type, 4 batches with a per-(batch, gene) effect, widened to 28,133
genes — NVIDIA's count after filtering — with null genes). Each size is simulated once into a
cached ``.h5ad`` (simulation is not timed), then a fresh process warms up on 20,000 of them (numba's
compilation for pynndescent's paths, ≈ 25 s, is paid there), reads the file, and runs
``sparkbooks.singlecell.official.run``: QC … regress-out, scale, PCA 100, neighbours, UMAP,
Louvain, Leiden, Harmony, the same four again, t-SNE, logistic-regression markers, diffusion map.
Peak memory is that process's largest resident set. Quality: ARI of the Harmony Leiden clusters
against the simulated cell types (``ari_groups``) and against the batches (``ari_batch``; 0 =
batches mixed). ``--fast`` also runs the settings in ``official.FAST`` on the same data.

NVIDIA's GPU seconds (their notebook's outputs, 216,382 real cells) are printed beside, as theirs.

    python benchmarks/single_cell_scaling.py [--sizes 20000,50000,216382] [--fast]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"sizes": "800", "genes": 0, "fast_only": True, "no_warm_up": True}


N_GENES = 28_133  # NVIDIA's genes after filtering
N_BATCHES = 4

SIMULATE = """
import os, sys
from sparkbooks import singlecell as scx
n, n_genes, n_batches, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
adata = scx.load_sample()
ref = scx.analyse(adata.copy(), seed=0)
reference = adata[ref.adata.obs_names, ref.adata.raw.var_names]
groups = ref.adata.obs["leiden"].astype(str).to_numpy()
sim = scx.simulate(reference, groups, n_cells=n, n_batches=n_batches, n_genes=n_genes or None, seed=0)
sim.write_h5ad(path + ".part")
os.replace(path + ".part", path)
print(f"{sim.n_obs:,} cells x {sim.n_vars:,} genes, {sim.X.nnz / sim.n_obs:,.0f} detected genes per cell")
"""

RUN = """
import gc, json, resource, sys, time
import anndata as ad
from sklearn.metrics import adjusted_rand_score
from sparkbooks.singlecell import official
fast = sys.argv[2] == "fast"
# numba compiles pynndescent's paths for > 4,096 and again for > ~10k cells: here, untimed, on 20,000 cells read
# alone (reading the whole file twice would leave its first copy in this process's peak)
if sys.argv[3] == "warm-up":
    official.run(ad.read_h5ad(sys.argv[1], backed="r")[:20000].to_memory(), batch_key="batch", label_key="sim_group",
                 fast=fast)
gc.collect()
start = time.perf_counter()
cells = [ad.read_h5ad(sys.argv[1])]
load_s = time.perf_counter() - start
# the list hands run() the only reference, so the unfiltered counts are freed when filtering copies them
result = official.run(cells.pop(), batch_key="batch", label_key="sim_group", fast=fast)
obs = result.adata.obs
print("RESULT " + json.dumps({
    "seconds": result.seconds, "backends": result.backends, "load_s": load_s, "cells": result.adata.n_obs,
    "genes": result.adata.raw.n_vars, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_by_step": result.peak_mb,
    "ari_groups": adjusted_rand_score(obs["sim_group"], obs["leiden_harmony"]),
    "ari_batch": adjusted_rand_score(obs["batch"], obs["leiden_harmony"]),
    "ari_groups_before_harmony": adjusted_rand_score(obs["sim_group"], obs["leiden"]),
    "clusters": int(obs["leiden_harmony"].nunique())}))
"""


def simulated(n: int, cache: Path, n_genes: int = N_GENES) -> Path:
    """The cached ``.h5ad`` of ``n`` simulated cells, made in a child process when missing (keyed by the simulation's code)."""
    code = (Path(__file__).resolve().parents[1] / "shared/sparkbooks/singlecell/simulation.py").read_bytes()
    key = hashlib.sha256(code + f"{n}/{n_genes}/{N_BATCHES}".encode()).hexdigest()[:12]
    path = cache / f"sim_{n}_{key}.h5ad"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-c", SIMULATE, str(n), str(n_genes), str(N_BATCHES), str(path)],
                              capture_output=True, text=True, check=True)
        print(f"simulated {done.stdout.strip().splitlines()[-1]} → {path}", flush=True)
    return path


def measure(path: Path, *, fast: bool, warm_up: bool = True) -> dict:
    """One fresh process: warm-up, read, the official step list; its figures."""
    done = subprocess.run([sys.executable, "-c", RUN, str(path), "fast" if fast else "standard",
                           "warm-up" if warm_up else "cold"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{path.name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    from sparkbooks.singlecell.official import FAST, NVIDIA_SECONDS, NVIDIA_TOTAL_S  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,50000,216382")
    parser.add_argument("--fast", action="store_true", help="also run official.FAST's settings on the same data")
    parser.add_argument("--fast-only", action="store_true", help="only official.FAST's settings")
    parser.add_argument("--no-warm-up", action="store_true", help="time the first run in each process (numba compiling)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "sparkbooks" / "single_cell_benchmark")
    parser.add_argument("--genes", type=int, default=N_GENES,
                        help="genes per simulated cell (default: NVIDIA's after filtering; 0: the sample's own)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    runs: dict[str, dict] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        path = simulated(n, args.cache, args.genes)
        for fast in (True,) if args.fast_only else (False, True) if args.fast else (False,):
            name = f"{n}{' fast' if fast else ''}"
            runs[name] = measure(path, fast=fast, warm_up=not args.no_warm_up)
            print(f"{name}: {sum(runs[name]['seconds'].values()):.1f} s, peak {runs[name]['peak_mb']:,.0f} MiB", flush=True)
    steps = list(next(iter(runs.values()))["seconds"])
    print(f"\n{'step':20}" + "".join(f"{name:>14}" for name in runs) + f"{'NVIDIA GPU*':>14}")
    for step in steps:
        print(f"{step:20}" + "".join(f"{r['seconds'][step]:14.2f}" for r in runs.values()) + (f"{NVIDIA_SECONDS[step]:14.2f}" if step in NVIDIA_SECONDS else f"{'(above)':>14}"))
    rows = {"total (steps)": lambda r: sum(r["seconds"].values()), "read .h5ad": lambda r: r["load_s"],
            "peak MiB (RSS)": lambda r: r["peak_mb"], "cells": lambda r: r["cells"], "genes": lambda r: r["genes"],
            "ARI groups": lambda r: r["ari_groups"], "ARI batch": lambda r: r["ari_batch"],
            "ARI groups, no Harmony": lambda r: r["ari_groups_before_harmony"], "clusters": lambda r: r["clusters"]}
    for label, get in rows.items():
        nvidia = {"total (steps)": f"{sum(NVIDIA_SECONDS.values()):14.2f}"}.get(label, f"{'':14}")
        cells = (f"{get(r):14,d}" if isinstance(get(r), int) else f"{get(r):14.3f}" if get(r) < 10 else f"{get(r):14,.0f}"
                 for r in runs.values())
        print(f"{label:20}" + "".join(cells) + nvidia)
    for name, r in runs.items():
        print(f"peak MiB after each step, {name}: " + ", ".join(f"{k} {v:,.0f}" for k, v in r["peak_by_step"].items()))
    print(f"* NVIDIA's notebook outputs on their GPU, 216,382 real cells (theirs; README total ≈ {NVIDIA_TOTAL_S:.0f} s "
          "with loading and plots). Fast settings: " + "; ".join(f"{k}: {v}" for k, v in FAST.items()))
    print(json.dumps({name: {"total_s": round(sum(r["seconds"].values()), 1), "peak_mb": round(r["peak_mb"]),
                             "ari_groups": round(r["ari_groups"], 4), "ari_batch": round(r["ari_batch"], 4),
                             "steps": {k: round(v, 2) for k, v in r["seconds"].items()}} for name, r in runs.items()}
                     | {"nvidia_total_s": NVIDIA_TOTAL_S, "n_genes": args.genes, "n_batches": N_BATCHES}))


if __name__ == "__main__":
    main()
