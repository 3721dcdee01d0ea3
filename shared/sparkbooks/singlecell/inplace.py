"""scanpy's regress-out and PCA arithmetic without its whole-matrix copies, for NVIDIA's step list at 216k × 5,000.

With scanpy's own calls the peak at NVIDIA's size was 16.1 GiB (a float64 copy in regress-out, scikit-learn's
copy in PCA); these do the same arithmetic in place (checked against scanpy in the tests).
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError

__all__ = ["pca", "regress_out"]


def _blocks(n: int, size: int = 8192):
    return (slice(start, min(start + size, n)) for start in range(0, n, size))


def regress_out(adata, keys: list[str]) -> None:
    """scanpy's ``regress_out`` for numeric keys — least squares on ``[1, keys…]``, residuals kept — without its
    float64 copy of the whole matrix (a float32 matrix times scanpy's float64 regressors is upcast: +7 GB at
    216k × 5,000). Same coefficients (accumulated in float64 over row blocks), residuals written in place.
    ``adata.X`` becomes a dense float32 array."""
    X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    X = np.ascontiguousarray(X, dtype=np.float32)
    design = np.column_stack([np.ones(adata.n_obs), adata.obs[keys].to_numpy(dtype=np.float64)])
    moment = np.zeros((design.shape[1], X.shape[1]))
    for rows in _blocks(adata.n_obs):
        moment += design[rows].T @ X[rows].astype(np.float64)
    coeff = np.linalg.inv(design.T @ design) @ moment  # scanpy's own formula (numpy_regress_out)
    for rows in _blocks(adata.n_obs):
        X[rows] -= (design[rows] @ coeff).astype(np.float32)
    adata.X = X


def pca(adata, n_comps: int, *, seed: int = 0) -> None:
    """``sc.pp.pca(svd_solver="randomized")`` on a dense matrix without scikit-learn's copy of it: the columns are
    centred in place, scikit-learn's randomized SVD runs with PCA's own settings (10 oversamples, 'auto' power
    iterations, signs fixed by ``svd_flip``), and the means are added back. Writes scanpy's keys (``X_pca``,
    ``PCs``, ``uns["pca"]`` with variance and variance ratio)."""
    from sklearn.utils.extmath import randomized_svd, svd_flip  # noqa: PLC0415

    X = adata.X
    if not isinstance(X, np.ndarray) or X.dtype != np.float32:
        raise InputError("pca expects the dense float32 matrix that regress_out and scale leave.")
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    X -= mean
    try:
        total = sum(float(np.square(X[rows], dtype=np.float64).sum()) for rows in _blocks(adata.n_obs))
        U, S, Vt = randomized_svd(X, n_comps, n_oversamples=10, n_iter="auto", power_iteration_normalizer="auto",
                                  flip_sign=False, random_state=seed)
    finally:
        X += mean  # the scaled matrix again, to float32 rounding
    U, Vt = svd_flip(U, Vt, u_based_decision=False)
    variance = S**2 / (adata.n_obs - 1)
    adata.obsm["X_pca"] = (U * S).astype(np.float32)
    adata.varm["PCs"] = Vt.T
    adata.uns["pca"] = {"params": {"zero_center": True, "use_highly_variable": False, "mask_var": None},
                        "variance": variance, "variance_ratio": variance / (total / (adata.n_obs - 1))}
