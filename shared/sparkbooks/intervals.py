"""Intervals and paired tests for rates measured on a few hundred items, without SciPy.

* :func:`wilson` — the Wilson score interval of k successes in n trials (sound near 0 and 1,
  where the normal approximation gives intervals outside [0, 1]);
* :func:`mcnemar` — the exact McNemar test of two methods scored on the same items;
* :func:`paired_bootstrap` — a percentile interval for the difference of two methods' mean
  scores on the same units (documents), resampling units, not the items within them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .exceptions import InputError

__all__ = ["Difference", "Interval", "Paired", "bootstrap_interval", "mcnemar", "paired_bootstrap", "wilson"]


@dataclass(frozen=True)
class Interval:
    """A confidence interval; unpacks as ``low, high``."""

    low: float
    high: float

    def __iter__(self):
        return iter((self.low, self.high))


@dataclass(frozen=True)
class Difference:
    """A mean difference and its confidence interval; unpacks as ``value, low, high``."""

    value: float
    low: float
    high: float

    def __iter__(self):
        return iter((self.value, self.low, self.high))


def wilson(successes: int, trials: int, *, z: float = 1.959964) -> Interval:
    """The Wilson score interval (95% by default) for ``successes`` / ``trials``."""
    if trials <= 0:
        return Interval(math.nan, math.nan)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    # exact at the ends, where rounding would otherwise leave the observed rate outside its own interval
    return Interval(0.0 if successes == 0 else max(0.0, centre - half), 1.0 if successes == trials else min(1.0, centre + half))


@dataclass(frozen=True)
class Paired:
    """Two methods on the same items: ``only_a`` right only for A, ``only_b`` only for B, and the exact two-sided p."""

    only_a: int
    only_b: int
    p_value: float

    def verdict(self, a: str = "A", b: str = "B", *, alpha: float = 0.05) -> str:
        if self.p_value >= alpha:
            return f"no significant difference (exact McNemar p = {self.p_value:.2g}; {self.only_a} vs {self.only_b} discordant)"
        better = a if self.only_a > self.only_b else b
        return f"{better} better (exact McNemar p = {self.p_value:.2g}; {self.only_a} vs {self.only_b} discordant)"


def mcnemar(a_right: list[bool], b_right: list[bool]) -> Paired:
    """Exact McNemar test: under no difference the discordant items split like fair coin flips."""
    if len(a_right) != len(b_right):
        raise InputError(f"paired results need the same items: {len(a_right)} vs {len(b_right)}")
    only_a = sum(1 for x, y in zip(a_right, b_right) if x and not y)
    only_b = sum(1 for x, y in zip(a_right, b_right) if y and not x)
    n, k = only_a + only_b, min(only_a, only_b)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
    return Paired(only_a, only_b, p)


def bootstrap_interval(values, statistic, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of ``statistic(values)``, resampling the rows of ``values`` (units kept whole)."""
    import numpy as np  # noqa: PLC0415

    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(values), size=(n_boot, len(values)))
    stats = np.array([statistic(values[r]) for r in rows])
    tail = round(50 * (1 - level), 10)  # 2.5 exactly for 95%, not 2.5000000000000022
    return Interval(float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail)))


def paired_bootstrap(a: list[float], b: list[float], *, n_boot: int = 4000, seed: int = 0,
                     level: float = 0.95) -> Difference:
    """Mean of ``a − b`` over paired units and its percentile bootstrap interval."""
    import numpy as np  # noqa: PLC0415

    if len(a) != len(b) or not a:
        raise InputError(f"paired scores need the same, non-empty units: {len(a)} vs {len(b)}")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return Difference(float(diff.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))
