"""Wilson intervals and the exact McNemar test against SciPy's reference implementations."""

import pytest
from scipy import stats

from sparkbooks import intervals
from sparkbooks.exceptions import InputError


@pytest.mark.parametrize(("k", "n"), [(18, 24), (0, 100), (100, 100), (1, 7), (57, 120)])
def test_wilson_matches_scipy(k, n):
    reference = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert tuple(intervals.wilson(k, n)) == pytest.approx((reference.low, reference.high), abs=1e-6)


def test_wilson_of_no_trials_is_undefined():
    low, high = intervals.wilson(0, 0)
    assert low != low and high != high  # nan


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (5, 0), (12, 4), (3, 9), (30, 30)])
def test_mcnemar_matches_an_exact_binomial_test(only_a, only_b):
    a = [True] * only_a + [False] * only_b + [True] * 10
    b = [False] * only_a + [True] * only_b + [True] * 10
    paired = intervals.mcnemar(a, b)
    expected = 1.0 if only_a + only_b == 0 else stats.binomtest(only_a, only_a + only_b).pvalue
    assert (paired.only_a, paired.only_b) == (only_a, only_b) and paired.p_value == pytest.approx(expected)


def test_mcnemar_verdict_names_the_better_method_only_when_significant():
    assert intervals.mcnemar([True] * 12, [False] * 12).verdict("x", "y").startswith("x better")
    assert intervals.mcnemar([True, False], [False, True]).verdict("x", "y").startswith("no significant difference")


def test_mcnemar_refuses_unpaired_lists():
    with pytest.raises(InputError, match="same items"):
        intervals.mcnemar([True], [True, False])


def test_paired_bootstrap_brackets_a_real_difference_and_straddles_none():
    a = [1.0] * 30 + [0.0] * 10
    diff, low, high = intervals.paired_bootstrap(a, [0.0] * 40)
    assert diff == pytest.approx(0.75) and 0.5 < low < 0.75 < high < 0.9
    same, low, high = intervals.paired_bootstrap(a, a[::-1])
    assert low < 0 < high


def test_paired_bootstrap_refuses_unpaired_scores():
    with pytest.raises(InputError, match="same, non-empty units"):
        intervals.paired_bootstrap([1.0], [])
