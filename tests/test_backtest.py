"""The backtest's judges: Sharpe tests over the risk-free rate, conditional coverage, the Acerbi–Szekely ES test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from sparkbooks.exceptions import InputError
from sparkbooks.finance import backtest as pb


def test_sharpe_test_measures_excess_returns_over_the_risk_free_rate():
    rng = np.random.default_rng(0)
    common = rng.normal(0, 0.01, 3000)
    a, b = common + rng.normal(4e-4, 0.004, 3000), 0.5 * common + rng.normal(2e-4, 0.002, 3000)
    rf = np.full(3000, 1.5e-4)  # ~4 %/yr T-bills
    over = pb.sharpe_test(a, b, risk_free=rf, n_boot=50)
    by_hand = pb.sharpe_test(a - rf, b - rf, n_boot=50)
    raw = pb.sharpe_test(a, b, n_boot=50)
    assert over.sharpe_a == pytest.approx(by_hand.sharpe_a) and over.p_hac == pytest.approx(by_hand.p_hac)
    assert over.sharpe_a < raw.sharpe_a - 0.1 and over.sharpe_b < raw.sharpe_b - 0.1
    with pytest.raises(InputError, match="risk_free"):
        pb.sharpe_test(a, b, risk_free=rf[:10])


def test_conditional_coverage_adds_kupiec_and_independence():
    forecast = np.column_stack([np.full(200, 0.02), np.full(200, 0.03)])
    clustered = -np.array([0.0] * 170 + [0.05] * 30)  # 15 % breaches, all in one run
    result = pb.var_backtest(clustered, forecast)
    lr_pof = chi2.isf(result["kupiec_p"], 1)
    lr_ind = chi2.isf(result["christoffersen_p"], 1)
    assert result["conditional_coverage_p"] == pytest.approx(chi2.sf(lr_pof + lr_ind, 2), rel=1e-6)
    assert result["conditional_coverage_p"] < 1e-6


def _es(f: dict, **kw) -> dict:
    return pb.es_backtest(f["daily_returns"], f["var"], f["es"], samples=f["samples"], which=f["which"], **kw)


def _historical_forecasts(returns: np.ndarray, window: int, every: int) -> dict:
    """Historical 95 % VaR/ES forecasts from the last ``window`` days, refreshed every ``every`` days."""
    days = len(returns) - window
    var, es, which, samples = np.empty(days), np.empty(days), np.empty(days, dtype=int), []
    for g, t in enumerate(range(window, len(returns), every)):
        losses = -returns[t - window:t]
        q = np.quantile(losses, 0.95)
        samples.append(losses)
        span = slice(t - window, min(t + every, len(returns)) - window)
        var[span], es[span], which[span] = q, losses[losses >= q].mean(), g
    return {"daily_returns": returns[window:], "var": var, "es": es, "samples": samples, "which": which}


def test_es_backtest_accepts_a_right_forecast_and_rejects_a_calm_one():
    rng = np.random.default_rng(1)
    right = rng.standard_t(4, 3000) * 0.01
    ok = _es(_historical_forecasts(right, 500, 20), n_sim=400, seed=0)
    assert ok["p_value"] > 0.05 and abs(ok["z2"]) < 0.3
    # calm windows, then a storm: the forecasts understate the tail, Z₂ is far below 0
    storm = np.concatenate([rng.normal(0, 0.005, 2500), rng.standard_t(3, 500) * 0.03])
    bad = _es(_historical_forecasts(storm, 500, 20), n_sim=400, seed=0)
    assert bad["z2"] < -0.5 and bad["p_value"] < 0.01 and abs(bad["simulated_mean"]) < 0.2
    with pytest.raises(InputError, match="one value per day"):
        pb.es_backtest(right[:10], np.ones(9), np.ones(10), samples=[right], which=np.zeros(10))
