"""The field's statistics for a handful of training seeds — rliable's, small and in numpy.

Agarwal et al., "Deep RL at the Edge of the Statistical Precipice" (NeurIPS 2021; the ``rliable``
library) set the rules this module follows:

* **the seed is the unit**: a method's score on a seed is the mean return of its *final* policy on
  fresh episodes; episodes within a seed are not independent replicates (12 episodes of 3 seeds are
  3 observations, not 12);
* **IQM** (interquartile mean: the mean of the middle 50 % of seeds, ``scipy.stats.trim_mean(x, 0.25)``)
  beside the mean; both with **stratified bootstrap** 95 % intervals (seeds resampled with
  replacement, separately per task and per method — rliable's ``StratifiedBootstrap``, percentile
  method);
* **probability of improvement** ``P(X > Y)``: the chance that a random seed of X beats a random
  seed of Y (ties count half; the Mann–Whitney U statistic over ``m·n``), with its bootstrap interval;
* a **success rate** (seeds whose fresh-episode mean reaches a line) with its Wilson interval — not
  "solved" from the first evaluation that crossed, which is a selection.

:func:`min_p_value` says why a 3-seed comparison can never reach p < 0.01, whatever the effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..exceptions import InputError
from ..intervals import wilson

__all__ = ["Estimate", "Success", "crossed_bootstrap", "iqm", "min_p_value", "paired_difference", "per_seed_means",
           "probability_of_improvement", "stratified_bootstrap", "success_rate", "summary"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate over seeds and its bootstrap interval; unpacks as ``value, low, high``."""

    value: float
    low: float
    high: float

    def __iter__(self):
        return iter((self.value, self.low, self.high))

    def __str__(self) -> str:
        return f"{self.value:,.1f} [{self.low:,.1f}, {self.high:,.1f}]"


@dataclass(frozen=True)
class Success:
    """``k`` of ``n`` seeds reached the line on fresh episodes, with the Wilson 95 % interval of the rate."""

    k: int
    n: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else math.nan

    def __str__(self) -> str:
        return f"{self.k} of {self.n} (95% interval {self.low:.0%}–{self.high:.0%})"


def _scores(scores, name: str = "scores") -> np.ndarray:
    """Seeds (× tasks) as a float array; one task is a column."""
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or not np.isfinite(x).all():
        raise InputError(f"{name} must be finite scores, one row per seed (and a column per task); got shape "
                         f"{np.shape(scores)}{' with NaN or inf' if x.size and not np.isfinite(x).all() else ''}.")
    return x


def iqm(scores) -> float:
    """Interquartile mean over all seeds (and tasks): the mean of the middle 50 %, as ``rliable.metrics.aggregate_iqm``."""
    from scipy.stats import trim_mean  # noqa: PLC0415

    return float(trim_mean(_scores(scores).ravel(), proportiontocut=0.25))


def per_seed_means(returns: Mapping[int, Sequence[float]]) -> np.ndarray:
    """One score per seed: the mean of that seed's fresh episodes (seeds in sorted order)."""
    if not returns:
        raise InputError("no seeds to score: train at least one seed first.")
    return np.array([float(np.mean(returns[s])) for s in sorted(returns)])


def _resample(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """One stratified bootstrap draw: each task's seeds resampled with replacement, separately."""
    rows = rng.integers(0, x.shape[0], size=x.shape)
    return np.take_along_axis(x, rows, axis=0)


def _percentile(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = round(50 * (1 - level), 10)
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def stratified_bootstrap(scores: Mapping[str, object], statistic: Callable[[np.ndarray], float] = iqm, *,
                         reps: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, Estimate]:
    """``{method: Estimate}``: ``statistic`` of each method's seeds and its stratified bootstrap percentile interval.

    ``scores`` maps a method to its per-seed scores (seeds × tasks, or one score per seed).
    Each method is resampled on its own, seeds within each task (rliable's ``get_interval_estimates``).
    """
    if not 0 < level < 1 or reps < 100:
        raise InputError(f"level must be in (0, 1) and reps at least 100; got level={level}, reps={reps}.")
    out = {}
    for i, (method, values) in enumerate(scores.items()):
        x = _scores(values, f"scores[{method!r}]")
        rng = np.random.default_rng(seed + i)
        draws = _draws(rng, x, statistic, reps)
        out[method] = Estimate(float(statistic(x)), *_percentile(draws, level))
    return out


def _draws(rng: np.random.Generator, x: np.ndarray, statistic: Callable, reps: int) -> np.ndarray:
    """``statistic`` of ``reps`` stratified resamples of ``x``; IQM and mean computed for all draws at once."""
    rows = rng.integers(0, x.shape[0], size=(reps, *x.shape))
    return _apply(np.take_along_axis(np.broadcast_to(x, (reps, *x.shape)), rows, axis=1).reshape(reps, -1), statistic)


def _apply(samples: np.ndarray, statistic: Callable) -> np.ndarray:
    """``statistic`` of each row of ``samples``."""
    if statistic is iqm:  # scipy's trim_mean per draw is the slow part: the same cut, vectorised
        cut = int(0.25 * samples.shape[1])
        return np.sort(samples, axis=1)[:, cut:samples.shape[1] - cut].mean(axis=1)
    if statistic is np.mean:
        return samples.mean(axis=1)
    return np.array([statistic(row) for row in samples])


def _improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over tasks of P(X > Y) + ½ P(X = Y) over all pairs of seeds (Mann–Whitney U / (m·n))."""
    per_task = [((xt[:, None] > yt[None, :]) + 0.5 * (xt[:, None] == yt[None, :])).mean() for xt, yt in zip(x.T, y.T)]
    return float(np.mean(per_task))


def probability_of_improvement(x, y, *, reps: int = 2000, seed: int = 0, level: float = 0.95) -> Estimate:
    """P(X > Y): the chance a random seed of method X scores above a random seed of Y, with its bootstrap interval.

    0.5 means no difference; rliable calls an improvement meaningful when the interval's lower end is above 0.5.
    X's and Y's seeds are resampled independently (rliable's ``StratifiedIndependentBootstrap``).
    """
    x, y = _scores(x, "x"), _scores(y, "y")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"x and y need the same tasks (columns): {x.shape[1]} vs {y.shape[1]}.")
    rng = np.random.default_rng(seed)
    draws = np.array([_improvement(_resample(rng, x), _resample(rng, y)) for _ in range(reps)])
    return Estimate(_improvement(x, y), *_percentile(draws, level))


def paired_difference(a, b, statistic: Callable[[np.ndarray], float] = iqm, *, reps: int = 2000, seed: int = 0,
                      level: float = 0.95) -> Estimate:
    """``statistic(a) − statistic(b)`` for two methods scored on the *same* seeds' episodes, seeds resampled together.

    Pairs stay pairs: each draw takes the same seeds for both methods, so the interval reflects
    seed-to-seed variation once. Use it for a claim such as "PPO's IQM is above LQR's".
    """
    a, b = _scores(a, "a"), _scores(b, "b")
    if a.shape != b.shape:
        raise InputError(f"paired scores need the same seeds: {a.shape[0]} vs {b.shape[0]}.")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, a.shape[0], size=(reps, *a.shape))  # the same seeds for both methods in each draw

    def take(x: np.ndarray) -> np.ndarray:
        return np.take_along_axis(np.broadcast_to(x, (reps, *x.shape)), rows, axis=1).reshape(reps, -1)

    draws = _apply(take(a), statistic) - _apply(take(b), statistic)
    return Estimate(float(statistic(a) - statistic(b)), *_percentile(draws, level))


def crossed_bootstrap(table, *, reps: int = 2000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean of a worlds × seeds table (e.g. 1 where a seed's policy held a randomised world) with an interval that
    resamples *both* worlds and seeds: the worlds are a sample of the randomisation, the seeds a sample of training.

    Resampling seeds alone would call a rate exact when every seed agrees, however few worlds were drawn.
    """
    x = _scores(table, "table")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, x.shape[0], size=(reps, x.shape[0]))
    cols = rng.integers(0, x.shape[1], size=(reps, x.shape[1]))
    draws = np.array([x[r][:, c].mean() for r, c in zip(rows, cols)])
    return Estimate(float(x.mean()), *_percentile(draws, level))


def success_rate(scores, line: float) -> Success:
    """How many seeds' fresh-episode scores reach ``line`` (e.g. Gymnasium's threshold), with the Wilson interval."""
    x = _scores(scores).ravel()
    k = int((x >= line).sum())
    low, high = wilson(k, len(x))
    return Success(k, len(x), low, high)


def min_p_value(n_a: int, n_b: int) -> float:
    """The smallest one-sided p an exact rank test of ``n_a`` against ``n_b`` seeds can give: 1 / C(n_a + n_b, n_a).

    3 vs 3 seeds: 0.05 — a criterion of p < 0.01 cannot be met however large the effect; 5 vs 5: 0.004.
    """
    if n_a < 1 or n_b < 1:
        raise InputError(f"both methods need at least one seed; got {n_a} and {n_b}.")
    return 1 / math.comb(n_a + n_b, n_a)


def summary(scores: Mapping[str, object], *, line: float | None = None, reps: int = 2000, seed: int = 0):
    """One row per method: seeds, IQM and mean with stratified bootstrap 95 % intervals, and the success rate."""
    import pandas as pd  # noqa: PLC0415

    by_iqm = stratified_bootstrap(scores, iqm, reps=reps, seed=seed)
    by_mean = stratified_bootstrap(scores, np.mean, reps=reps, seed=seed)
    rows = {}
    for method, values in scores.items():
        row = {"seeds": _scores(values).shape[0], "IQM": by_iqm[method].value, "IQM low": by_iqm[method].low,
               "IQM high": by_iqm[method].high, "mean": by_mean[method].value, "mean low": by_mean[method].low,
               "mean high": by_mean[method].high}
        if line is not None:
            ok = success_rate(values, line)
            row |= {"success": f"{ok.k}/{ok.n}", "success low": ok.low, "success high": ok.high}
        rows[method] = row
    return pd.DataFrame(rows).T
