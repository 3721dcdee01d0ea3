"""Simulated cells with a known answer: a negative-binomial fit of real ones, with batch effects easy and hard.

Each group's per-gene mean comes from its real cells (depth-normalised); one dispersion per gene
is fitted by moments across all cells and clipped to [0.01, 10]. A new cell draws its group by
the real proportions (restricted to the batches a group is present in) and a library size from
that group's real cells. Batch effects multiply each gene's mean by a log-normal factor
(σ = ``batch_strength``):

* ``global`` — one factor per (batch, gene): a shift the same for every cell type, which
  centring each batch already removes (too easy to tell a real correction from a trivial one);
* ``celltype`` — one factor per (batch, group, gene): each cell type moves its own way, the case
  integration methods such as Harmony exist for.

``absent`` removes groups from batches — e.g. a cell type seen in one batch only, which a global
correction mistakes for batch effect. Labels: ``obs["sim_group"]``, ``obs["batch"]``.

``n_genes`` above the reference's gene count adds **null genes** (named ``NULL-…``): each takes the
overall mean and dispersion of a randomly chosen real gene from the lowest quarter of expression, the
same in every group — genes a real atlas carries by the ten thousand, detected in few cells and
telling nothing about cell type. They make the matrix as wide as a real one (NVIDIA's data set:
28,133 genes after filtering; a 559-cell sample detects under 10,000) without inventing biology.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..exceptions import InputError

__all__ = ["simulate"]


def simulate(reference, groups: Sequence[Any], *, n_cells: int, n_batches: int = 1, batch_strength: float = 0.5,
             batch_effect: str = "global", absent: Mapping[Any, Sequence[int]] | None = None,
             n_genes: int | None = None, seed: int = 0):
    """``n_cells`` simulated cells from a per-group negative-binomial fit of ``reference`` (raw counts).

    Raises
    ------
    InputError
        ``batch_effect`` is neither ``global`` nor ``celltype``, ``absent`` removes a group from every batch,
        or ``n_genes`` is below the reference's gene count.
    """
    import anndata as ad  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415

    if batch_effect not in ("global", "celltype"):
        raise InputError(f"batch_effect must be 'global' or 'celltype'. Got {batch_effect!r} instead.")
    rng = np.random.default_rng(seed)
    X = reference.X.toarray() if sp.issparse(reference.X) else np.asarray(reference.X)
    groups = np.asarray(groups)
    names, index = np.unique(groups, return_inverse=True)
    allowed = np.ones((n_batches, len(names)), dtype=bool)
    for group, batches in (absent or {}).items():
        hit = np.flatnonzero(names.astype(str) == str(group))
        if hit.size:
            allowed[list(batches), hit[0]] = False
    if not allowed.any(axis=0).all():
        raise InputError("absent removes a group from every batch: each group needs at least one batch.")
    libsize = X.sum(axis=1)
    norm = X / libsize[:, None] * libsize.mean()
    means = np.vstack([norm[index == g].mean(axis=0) for g in range(len(names))])  # groups × genes
    mu, var = norm.mean(axis=0), norm.var(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = np.clip(np.nan_to_num((var - mu) / mu**2, nan=0.1), 0.01, 10.0)
    var = reference.var[[]].copy()
    extra = 0 if n_genes is None else n_genes - X.shape[1]
    if extra < 0:
        raise InputError(f"n_genes ({n_genes:,}) is below the reference's {X.shape[1]:,} genes; it only adds null genes.")
    if extra:
        expressed = np.flatnonzero(mu > 0)
        low = expressed[mu[expressed] <= np.percentile(mu[expressed], 25)]  # ≈ 7 % of the UMIs at 28k genes
        pick = rng.choice(low, size=extra)
        means = np.hstack([means, np.repeat(mu[pick][None, :], len(names), axis=0)])
        dispersion = np.concatenate([dispersion, dispersion[pick]])
        var = pd.DataFrame(index=pd.Index(list(var.index) + [f"NULL-{i:05d}" for i in range(extra)]))
    proportions = np.bincount(index, minlength=len(names)) / len(index)
    batch_of = rng.integers(0, n_batches, size=n_cells)
    group_of = np.empty(n_cells, dtype=int)
    for b in range(n_batches):  # each batch draws only the groups present in it, in their real proportions
        here = np.flatnonzero(batch_of == b)
        p = proportions * allowed[b]
        group_of[here] = rng.choice(len(names), size=len(here), p=p / p.sum())
    width = means.shape[1]
    if n_batches == 1:
        factor = np.ones((1, len(names), width))
    elif batch_effect == "global":
        factor = np.repeat(np.exp(rng.normal(0.0, batch_strength, size=(n_batches, 1, width))), len(names), axis=1)
    else:
        factor = np.exp(rng.normal(0.0, batch_strength, size=(n_batches, len(names), width)))
    rows = []
    for start in range(0, n_cells, 2000):  # chunks keep the dense draw small
        g, b = group_of[start:start + 2000], batch_of[start:start + 2000]
        lib = np.array([rng.choice(libsize[index == k]) for k in g])
        mean = means[g] * factor[b, g] * (lib / libsize.mean())[:, None]
        shape = 1.0 / dispersion
        lam = rng.gamma(shape, mean / shape)  # gamma–Poisson = negative binomial
        rows.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
    obs = pd.DataFrame({"sim_group": pd.Categorical(names[group_of].astype(str)),
                        "batch": pd.Categorical([f"batch{b}" for b in batch_of])},
                       index=[f"sim_{i}" for i in range(n_cells)])
    return ad.AnnData(sp.vstack(rows).tocsr(), obs=obs, var=var)
