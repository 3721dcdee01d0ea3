"""Single-cell at NVIDIA's size: their notebook's step list on exactly 216,382 cells after QC × 28,133 genes, every step timed.

Like for like: NVIDIA's 216,382 × 28,133 is their data set *after* QC, so each size here is a count of cells
that pass NVIDIA's QC (< 5,000 genes, < 20 % mitochondrial): about 25 % more cells are simulated from the real
celltypist sample (``sparkbooks.singlecell.simulate``: a negative-binomial fit per cell type, 4 batches with a
per-(batch, gene) effect, widened to 28,133 genes with null genes; the sparse sampler, whose cost follows the
non-zeros) and cut with ``official.passing_qc`` so that exactly that many pass. Each size is simulated once into
a cached ``.h5ad`` (not timed); a fresh process then warms up on 20,000 of them (numba's compilation for
pynndescent's paths, ≈ 25 s, is paid there), reads the file, and runs ``sparkbooks.singlecell.official.run``:
QC … regress-out, scale, PCA 100, neighbours, UMAP, Louvain at 0.6 (igraph multilevel with the resolution —
scanpy's igraph flavour drops it), Leiden at 0.6 to convergence (iterations recorded), Harmony, the same four
again, t-SNE, logistic-regression markers (max_iter 1,000, iterations recorded), diffusion map.

Per step: seconds, NVIDIA's GPU seconds (their notebook's outputs on 216,382 real cells: **theirs**), the ratio
— only where this run had 216,382 cells after QC, else blank —, whether the step is shape-bound (its cost set by
the matrix: comparable on simulated cells) or data-dependent (iterations, numbers of clusters and types: not
comparable), iterations, and the step's own peak resident memory. Quality: NMI and ARI of the Harmony Leiden
clusters against the simulated cell types, ARI against the batches (0 = mixed).

    python benchmarks/single_cell_scaling.py [--sizes 216382] [--fast] [--out benchmarks/results/single_cell_216382.json]

The figures are written as JSON (``--out``; default ``benchmarks/results/single_cell_<sizes>.json``, none for
``--smoke``) with the command, the date and the machine: the guide reads that file, it never retypes a figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"sizes": "600", "genes": 0, "fast_only": True, "no_warm_up": True, "reference": "stand-in"}
#: why `--smoke` simulates from a stand-in reference: reading the celltypist sample's CSV and clustering it (numba
#: compiling pynndescent and UMAP in that process) cost ≈ 20 s of a fresh clone's 52 s smoke; that path — the
#: sample, its analysis, simulating from it, official.run on the result — is run by tests/test_singlecell.py
#: (the `simulation_source` fixture, test_nvidias_step_list_runs_every_step_with_its_parameters)
SMOKE_REFERENCE = ("smoke: simulated from a seeded 360-cell negative-binomial stand-in, not the celltypist sample's "
                   "analysis (tests/test_singlecell.py::test_nvidias_step_list_runs_every_step_with_its_parameters "
                   "runs that path)")


N_GENES = 28_133  # NVIDIA's genes after filtering
N_BATCHES = 4

SIMULATE = """
import os, sys
from sparkbooks import singlecell as scx
from sparkbooks.singlecell import official
n, n_genes, n_batches, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
adata = scx.load_sample()
ref = scx.analyse(adata.copy(), seed=0)
reference = adata[ref.adata.obs_names, ref.adata.raw.var_names]
groups = ref.adata.obs["leiden"].astype(str).to_numpy()
# ~82 % pass NVIDIA's QC: simulate a quarter more, then cut so that exactly n pass
sim = scx.simulate(reference, groups, n_cells=int(n * 1.25) + 200, n_batches=n_batches, n_genes=n_genes or None,
                   seed=0, sampler="sparse")
simulated = sim.n_obs
sim = official.passing_qc(sim, n)
sim.write_h5ad(path + ".part")
os.replace(path + ".part", path)
print(f"{sim.n_obs:,} of {simulated:,} simulated cells kept ({n:,} pass QC) x {sim.n_vars:,} genes, "
      f"{sim.X.nnz / sim.n_obs:,.0f} detected genes per cell")
"""

RUN = """
import gc, json, resource, sys, time
import anndata as ad
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
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
result = official.run(cells.pop(), batch_key="batch", label_key="sim_group", fast=fast,
                      on_step=lambda name, s, mb: print(f"STEP {name} {s:.2f} s, peak {mb:,.0f} MB", flush=True))
obs = result.adata.obs
table = result.table()
print("RESULT " + json.dumps({
    "seconds": result.seconds, "backends": result.backends, "load_s": load_s, "cells": result.adata.n_obs,
    "genes": result.adata.raw.n_vars, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_by_step": result.peak_mb, "iterations": result.iterations, "non_embedding_s": result.non_embedding_s,
    "ratio": {k: (None if v != v else v) for k, v in table["ratio"].drop("total").items()},
    "comparable": table["comparable"].drop("total").to_dict(),
    "nmi_groups": normalized_mutual_info_score(obs["sim_group"], obs["leiden_harmony"]),
    "ari_groups": adjusted_rand_score(obs["sim_group"], obs["leiden_harmony"]),
    "ari_batch": adjusted_rand_score(obs["batch"], obs["leiden_harmony"]),
    "ari_groups_before_harmony": adjusted_rand_score(obs["sim_group"], obs["leiden"]),
    "clusters": int(obs["leiden_harmony"].nunique()), "groups": int(obs["sim_group"].nunique())}))
"""

#: the same simulation from the stand-in reference (``--smoke``); SIMULATE itself is unchanged, so the cached
#: full-size files keep their keys
STAND_IN_REFERENCE = """# --smoke: a seeded negative-binomial stand-in reference with 6 planted types
import numpy as np, pandas as pd, scipy.sparse as sp, anndata as ad
rng = np.random.default_rng(0)
n_ref, genes = 360, 8000
groups = np.repeat([f"type{i}" for i in range(6)], n_ref // 6)
mean = rng.gamma(0.3, 1.5, genes) * np.exp(rng.normal(0, 1, (6, genes)) * (rng.random(genes) < 0.1))
mean[:, :13] *= 0.05  # the 13 mitochondrial genes: a small share, as in real cells
mu = mean[np.repeat(np.arange(6), n_ref // 6)]
names = [f"MT-{i}" for i in range(13)] + [f"GENE{i}" for i in range(13, genes)]
reference = ad.AnnData(sp.csr_matrix(rng.negative_binomial(2, 2 / (2 + mu)).astype(np.float32)),
                       var=pd.DataFrame(index=names))
"""
STAND_IN_SIMULATE = SIMULATE.replace(
    SIMULATE[SIMULATE.index("adata = scx.load_sample()"):SIMULATE.index("# ~82 % pass")], STAND_IN_REFERENCE)


def simulated(n: int, cache: Path, n_genes: int = N_GENES, reference: str = "sample") -> Path:
    """The cached ``.h5ad`` whose first ``n`` QC-passing cells end it (made in a child process when missing; keyed by
    the simulation's code): ``official.run`` filters it to exactly ``n`` cells. ``reference``: ``"sample"`` (the
    celltypist sample's clusters) or ``"stand-in"`` (``--smoke``: a seeded synthetic reference)."""
    here = Path(__file__).resolve().parents[1] / "shared/sparkbooks/singlecell"
    script = SIMULATE if reference == "sample" else STAND_IN_SIMULATE
    code = b"".join((here / f).read_bytes() for f in ("simulation.py", "sampling.py")) + script.encode()
    key = hashlib.sha256(code + f"{n}/{n_genes}/{N_BATCHES}".encode()).hexdigest()[:12]
    path = cache / f"sim_{n}_{'' if reference == 'sample' else 'stand-in_'}{key}.h5ad"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-c", script, str(n), str(n_genes), str(N_BATCHES), str(path)],
                              capture_output=True, text=True, check=True)
        print(f"simulated {done.stdout.strip().splitlines()[-1]} → {path}", flush=True)
    return path


def measure(path: Path, *, fast: bool, warm_up: bool = True) -> dict:
    """One fresh process: warm-up, read, the official step list; its figures (its per-step lines echoed as they come)."""
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a full stderr pipe would stall the child
        child = subprocess.Popen([sys.executable, "-c", RUN, str(path), "fast" if fast else "standard",
                                  "warm-up" if warm_up else "cold"], stdout=subprocess.PIPE, stderr=errors, text=True)
        lines = []
        for ln in child.stdout:
            lines.append(ln)
            if ln.startswith("STEP "):  # the timed run's steps as they finish (the warm-up prints none)
                print("  " + ln[5:].rstrip(), flush=True)
        if child.wait() != 0:
            errors.seek(0)
            raise SystemExit(f"{path.name} failed (exit {child.returncode}):\n{errors.read()[-3000:]}")
    line = next(ln for ln in lines if ln.startswith("RESULT "))
    return with_process_peak(json.loads(line[len("RESULT "):]))


def with_process_peak(result: dict) -> dict:
    """``peak_mb`` as the process's peak: the largest of ``ru_maxrss`` and the step peaks. Each step resets the
    kernel's high-water mark (VmHWM) to get its own peak, which resets ``ru_maxrss`` too, so ``ru_maxrss`` alone is
    only the last step's peak (a 216k run reported 9,302 MiB against a 13,429 MiB step)."""
    return result | {"peak_mb": max([result["peak_mb"], *result["peak_by_step"].values()])}


def record(runs: dict[str, dict], *, command: list[str], started: str, finished: str, fast: bool, n_genes: int) -> dict:
    """The JSON the guide reads: the command, the dates, the machine, and each run's figures."""
    from sparkbooks.singlecell.official import NVIDIA_TOTAL_S  # noqa: PLC0415

    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        memory_gib = None
    return {"benchmark": "benchmarks/single_cell_scaling.py", "command": " ".join(["python", *command]),
            "date": f"{started}/{finished}",
            "machine": {"description": f"{platform.node()} ({platform.machine()}, {platform.processor() or 'cpu'})",
                        "cpus": os.cpu_count(), "memory_gib": memory_gib, "gpu": None,
                        "load_avg_1m_at_end": round(os.getloadavg()[0], 1)},
            "source": {"transcribed": False}, "fast": fast,
            "runs": {name: {"cells": r["cells"], "genes": r["genes"], "total_s": round(sum(r["seconds"].values()), 1),
                            "non_embedding_s": round(r["non_embedding_s"], 1), "peak_mb": round(r["peak_mb"]),
                            "nmi_groups": round(r["nmi_groups"], 4), "ari_groups": round(r["ari_groups"], 4),
                            "ari_batch": round(r["ari_batch"], 4),
                            "ari_groups_before_harmony": round(r["ari_groups_before_harmony"], 4),
                            "clusters": r["clusters"], "groups": r["groups"], "load_s": round(r["load_s"], 1),
                            "iterations": r["iterations"], "steps": {k: round(v, 2) for k, v in r["seconds"].items()},
                            "peak_mb_by_step": {k: round(v) for k, v in r["peak_by_step"].items()},
                            "ratio": {k: None if v is None else round(v, 2) for k, v in r["ratio"].items()}}
                     for name, r in runs.items()},
            "nvidia_total_s": NVIDIA_TOTAL_S, "n_genes": n_genes}


def main() -> None:
    from sparkbooks.singlecell.official import FAST, NVIDIA_CELLS, NVIDIA_GENES, NVIDIA_SECONDS, NVIDIA_TOTAL_S  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="216382", help="cells after NVIDIA's QC, comma-separated")
    parser.add_argument("--fast", action="store_true", help="also run official.FAST's settings on the same data")
    parser.add_argument("--fast-only", action="store_true", help="only official.FAST's settings")
    parser.add_argument("--no-warm-up", action="store_true", help="time the first run in each process (numba compiling)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "sparkbooks" / "single_cell_benchmark")
    parser.add_argument("--genes", type=int, default=N_GENES,
                        help="genes per simulated cell (default: NVIDIA's after filtering; 0: the sample's own)")
    parser.add_argument("--reference", choices=["sample", "stand-in"], default="sample",
                        help="what cells are simulated from: the celltypist sample's clusters, or (--smoke) a stand-in")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    parser.add_argument("--out", type=Path, help="the JSON record (default benchmarks/results/single_cell_<sizes>.json; "
                                                 "none with --smoke)")
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    if args.reference != "sample":
        print(SMOKE_REFERENCE, flush=True)
    started = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    runs: dict[str, dict] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        path = simulated(n, args.cache, args.genes, args.reference)
        for fast in (True,) if args.fast_only else (False, True) if args.fast else (False,):
            name = f"{n}{' fast' if fast else ''}"
            runs[name] = measure(path, fast=fast, warm_up=not args.no_warm_up)
            print(f"{name}: {sum(runs[name]['seconds'].values()):.1f} s, peak {runs[name]['peak_mb']:,.0f} MiB", flush=True)
    for name, r in runs.items():  # one table per run: seconds, theirs, ratio (same cells only), kind, iterations, peak
        print(f"\n{name} cells after QC — {'step':18}{'seconds':>9}{'NVIDIA GPU*':>13}{'ratio':>7}  {'comparable':15}"
              f"{'peak MiB':>9}  iterations")
        for step, seconds in r["seconds"].items():
            theirs = f"{NVIDIA_SECONDS[step]:13.2f}" if step in NVIDIA_SECONDS else f"{'(above)':>13}"
            ratio = r["ratio"].get(step)
            print(f"{'':{len(name) + 19}}{step:18}{seconds:9.2f}{theirs}{'' if ratio is None else f'{ratio:.1f}':>7}  "
                  f"{r['comparable'][step]:15}{r['peak_by_step'][step]:9,.0f}  {r['iterations'].get(step, '')}")
    rows = {"total (steps)": lambda r: sum(r["seconds"].values()), "non-embedding steps": lambda r: r["non_embedding_s"],
            "read .h5ad": lambda r: r["load_s"], "peak MiB (RSS)": lambda r: r["peak_mb"], "cells": lambda r: r["cells"],
            "genes": lambda r: r["genes"], "NMI groups": lambda r: r["nmi_groups"], "ARI groups": lambda r: r["ari_groups"],
            "ARI batch": lambda r: r["ari_batch"], "ARI groups, no Harmony": lambda r: r["ari_groups_before_harmony"],
            "clusters": lambda r: r["clusters"], "simulated types": lambda r: r["groups"]}
    print(f"\n{'':24}" + "".join(f"{name:>14}" for name in runs) + f"{'NVIDIA GPU*':>14}")
    for label, get in rows.items():
        nvidia = {"total (steps)": f"{sum(NVIDIA_SECONDS.values()):14.2f}",
                  "cells": f"{NVIDIA_CELLS:14,d}", "genes": f"{NVIDIA_GENES:14,d}"}.get(label, f"{'':14}")
        cells = (f"{get(r):14,d}" if isinstance(get(r), int) else f"{get(r):14.3f}" if get(r) < 10 else f"{get(r):14,.0f}"
                 for r in runs.values())
        print(f"{label:24}" + "".join(cells) + nvidia)
    print(f"* NVIDIA's notebook outputs on their GPU, 216,382 real cells after QC (theirs; README total ≈ {NVIDIA_TOTAL_S:.0f} s "
          "with loading and plots); ratio = seconds here / theirs, only where this run had 216,382 cells after QC. "
          "Non-embedding = every step but the UMAPs and t-SNE. Fast settings: " + "; ".join(f"{k}: {v}" for k, v in FAST.items()))
    print(json.dumps({name: {"cells": r["cells"], "genes": r["genes"], "total_s": round(sum(r["seconds"].values()), 1),
                             "non_embedding_s": round(r["non_embedding_s"], 1), "peak_mb": round(r["peak_mb"]),
                             "nmi_groups": round(r["nmi_groups"], 4), "ari_groups": round(r["ari_groups"], 4),
                             "ari_batch": round(r["ari_batch"], 4), "iterations": r["iterations"],
                             "steps": {k: round(v, 2) for k, v in r["seconds"].items()},
                             "peak_mb_by_step": {k: round(v) for k, v in r["peak_by_step"].items()},
                             "ratio": {k: None if v is None else round(v, 2) for k, v in r["ratio"].items()}}
                      for name, r in runs.items()}
                     | {"nvidia_total_s": NVIDIA_TOTAL_S, "n_genes": args.genes, "n_batches": N_BATCHES,
                        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1)}))
    out = args.out or (None if args.smoke else Path(__file__).parent / "results"
                       / f"single_cell_{args.sizes.replace(',', '_')}.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record(runs, command=sys.argv, started=started,
                                         finished=time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                                         fast=args.fast_only, n_genes=args.genes), indent=1))
        print(f"written {out}")

if __name__ == "__main__":
    main()
