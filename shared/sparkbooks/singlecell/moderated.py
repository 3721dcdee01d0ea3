"""limma-voom on donor sums, ported: the log-scale test the field runs on pseudobulks beside DESeq2 and edgeR.

limma (Smyth 2004; Law et al. 2014) is R. This is a port of the three steps it runs for a two-group design, not
limma itself: :func:`voom_weights` (log-CPM with precision weights read from the mean–variance trend of the
residual standard deviations, a lowess at span 0.5 as ``voom`` fits it), a weighted least-squares fit of each gene
(``lmFit`` with two groups: the coefficient is the weighted difference of the group means) and
:func:`squeeze_variances` (``eBayes``' ``fitFDist`` + ``squeezeVar`` without a trend: each gene's residual variance
shrunk toward a scaled inverse-χ² prior fitted across genes), then the moderated t on d + d₀ degrees of freedom.
Without the weights (``voom=False``) it is limma-trend's cousin on unweighted log-CPM — which limma's own
documentation limits to libraries within about threefold of each other; donor sums differ far more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import InputError
from .de import pseudobulk

__all__ = ["Squeezed", "squeeze_variances", "voom_de", "voom_weights"]


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by limma's Newton iteration (``trigammaInverse``)."""
    from scipy.special import polygamma  # noqa: PLC0415

    if x > 1e7:
        return 1 / np.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(polygamma(1, y))
        step = tri * (1 - tri / x) / float(polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


@dataclass(frozen=True)
class Squeezed:
    """Posterior variances, and the prior's degrees of freedom d₀ (∞: no more spread than sampling) and scale s₀²."""

    posterior: np.ndarray
    prior_df: float
    prior_var: float


def squeeze_variances(s2: np.ndarray, df: float) -> Squeezed:
    """limma's ``squeezeVar`` without a covariate: a scaled inverse-χ² prior fitted to the gene-wise variances ``s2``
    (each on ``df`` degrees of freedom) by ``fitFDist``'s moments of log s², and each variance shrunk toward it. When
    the variances spread no more than sampling does, d₀ = ∞ and every gene gets the mean variance (limma ≥ 3.46)."""
    from scipy.special import digamma, polygamma  # noqa: PLC0415

    s2 = np.maximum(np.asarray(s2, dtype=float), 0.0)
    middle = float(np.median(s2))
    s2 = np.maximum(s2, 1e-5 * (middle if middle > 0 else 1.0))  # limma's guard against zero variances
    e = np.log(s2) - digamma(df / 2) + np.log(df / 2)
    spread = float(np.var(e, ddof=1) - polygamma(1, df / 2))
    if spread > 0:
        d0 = 2 * _trigamma_inverse(spread)
        s20 = float(np.exp(e.mean() + digamma(d0 / 2) - np.log(d0 / 2)))
        return Squeezed((d0 * s20 + df * s2) / (d0 + df), d0, s20)
    return Squeezed(np.full_like(s2, s2.mean()), float("inf"), float(s2.mean()))


def _group_fit(y: np.ndarray, second: np.ndarray, w: np.ndarray):
    """Weighted two-group least squares per gene (columns of ``y``): fitted values, difference, residual variance,
    and the difference's unscaled standard deviation √(1/ΣwA + 1/ΣwB)."""
    wa, wb = w[~second].sum(axis=0), w[second].sum(axis=0)
    mean_a = (w[~second] * y[~second]).sum(axis=0) / wa
    mean_b = (w[second] * y[second]).sum(axis=0) / wb
    fitted = np.where(second[:, None], mean_b[None, :], mean_a[None, :])
    s2 = (w * (y - fitted) ** 2).sum(axis=0) / (len(y) - 2)
    return fitted, mean_b - mean_a, s2, np.sqrt(1 / wa + 1 / wb)


def voom_weights(counts: np.ndarray, second: np.ndarray, *, span: float = 0.5) -> np.ndarray:
    """voom's precision weights for ``counts`` (samples × genes) under the two-group design ``second``: log-CPM
    y = log2((c + 0.5) / (N + 1) · 10⁶), the square root of each gene's residual SD against its mean log count, a
    lowess (span ``span``, three robustness iterations, as R's ``lowess``), and w = f(fitted log count)⁻⁴."""
    from statsmodels.nonparametric.smoothers_lowess import lowess  # noqa: PLC0415

    lib = counts.sum(axis=1)
    y = np.log2((counts + 0.5) / (lib[:, None] + 1) * 1e6)
    fitted, _, s2, _ = _group_fit(y, second, np.ones_like(y))
    sx = y.mean(axis=0) + np.mean(np.log2(lib + 1)) - np.log2(1e6)
    sy = np.sqrt(np.sqrt(s2))
    keep = counts.sum(axis=0) > 0
    curve = lowess(sy[keep], sx[keep], frac=span, it=3, delta=0.01 * np.ptp(sx[keep]), return_sorted=True)
    fitted_logcount = np.log2(1e-6 * 2**fitted * (lib[:, None] + 1))
    return 1 / np.interp(fitted_logcount, curve[:, 0], curve[:, 1]) ** 4


def voom_de(adata, *, donor_key: str = "donor", condition_key: str = "condition", min_count: int = 10,
            voom: bool = True):
    """limma-voom on the donor sums (a port, see the module): genes with fewer than ``min_count`` summed counts are
    left out (``padj`` NaN), the rest get voom's weights (``voom=False``: none), a weighted two-group fit, eBayes'
    moderated t of the second condition over the first, BH-adjusted. ``attrs``: ``prior_df`` (d₀), ``prior_var``.
    Library sizes are the raw sums (no TMM ``calcNormFactors``): where a few genes take a large, changing share of the
    counts, the log-fold changes of the rest shift — normalise the sums first on such data."""
    import pandas as pd  # noqa: PLC0415
    from scipy.stats import false_discovery_control, t  # noqa: PLC0415

    sums, condition = pseudobulk(adata, donor_key=donor_key, condition_key=condition_key)
    levels = sorted(condition.unique())
    if len(levels) != 2 or condition.value_counts().min() < 2:
        raise InputError(f"limma-voom needs two conditions with ≥ 2 donors each; got {condition.value_counts().to_dict()}.")
    kept = sums.columns[sums.sum(axis=0) >= min_count]
    counts = sums[kept].to_numpy(dtype=float)
    second = (condition == levels[1]).to_numpy()
    lib = counts.sum(axis=1)
    y = np.log2((counts + 0.5) / (lib[:, None] + 1) * 1e6)
    w = voom_weights(counts, second) if voom else np.ones_like(y)
    _, coef, s2, unscaled = _group_fit(y, second, w)
    df = len(y) - 2
    squeezed = squeeze_variances(s2, df)
    stat = coef / (unscaled * np.sqrt(squeezed.posterior))
    p = 2 * t.sf(np.abs(stat), min(df + squeezed.prior_df, df * len(kept)))  # eBayes caps d + d₀ at the pooled df
    table = pd.DataFrame({"log2fc": coef, "t": stat, "p": p, "padj": false_discovery_control(p)}, index=kept)
    table = table.reindex(sums.columns)
    table.attrs.update(prior_df=squeezed.prior_df, prior_var=squeezed.prior_var, weights="voom" if voom else "none")
    return table
