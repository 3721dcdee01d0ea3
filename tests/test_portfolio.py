"""Portfolio pipeline: real data, scenarios, frontier, cardinality vs brute force, a backtest that cannot see the future."""

import itertools

import numpy as np
import pandas as pd
import pytest

from sparkbooks.finance import cvar
from sparkbooks.finance import portfolio
from sparkbooks.finance import backtest as pb
from sparkbooks.exceptions import InputError


@pytest.fixture(scope="module")
def returns():
    prices, index = portfolio.load_prices()
    assert prices.shape == (8313, 20) and index.index.equals(prices.index) and index.notna().all()
    return prices.pct_change().dropna()


def test_price_files_are_validated(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        portfolio.load_prices(str(tmp_path / "none.csv"))
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"ticker": ["x", "y"], "A": [1.0, 2.0]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="dates"):
        portfolio.load_prices(str(bad))
    negative = tmp_path / "neg.csv"
    pd.DataFrame({"Date": ["2020-01-01", "2020-01-02"], "A": [1.0, -1.0], "B": [2.0, 2.1]}).to_csv(negative, index=False)
    with pytest.raises(InputError, match="positive"):
        portfolio.load_prices(str(negative))
    good = tmp_path / "good.csv"
    pd.DataFrame({"Date": ["2020-01-01", "2020-01-02", "2020-01-03"], "A": [1.0, 1.1, 1.2], "B": [2.0, 2.1, None],
                  "C": [5.0, 5.5, 5.2], "SP500": [100.0, 101.0, 99.0]}).to_csv(good, index=False)
    prices, index = portfolio.load_prices(str(good))
    assert list(prices.columns) == ["A", "C"] and index.tolist() == [100.0, 101.0, 99.0]  # B has a 33% gap: dropped


def test_kde_scenarios_keep_each_assets_variance_and_mean_and_bootstrap_reuses_days(returns):
    window = returns.iloc[-504:]
    scen = portfolio.scenarios(window, 4000, seed=0)
    assert scen.shape == (4000, 20)
    assert np.allclose(scen.std(axis=0), window.std().to_numpy(), rtol=0.1)
    assert np.abs(np.corrcoef(scen.T) - window.corr().to_numpy()).max() < 0.25
    # the means match history exactly: 2,000 raw draws were up to 21%/yr off (XOM 58% → 37%, PFE 23% → 41%)
    assert np.allclose(portfolio.scenarios(window, 2000, seed=3).mean(axis=0), window.mean().to_numpy(), atol=1e-15)
    boot = portfolio.scenarios(window, 50, method="bootstrap", seed=1)
    assert all((window.to_numpy() == row).all(axis=1).any() for row in boot)
    assert np.array_equal(portfolio.scenarios(window, 1, method="historical"), window.to_numpy())
    with pytest.raises(InputError, match="historical, kde, fhs, bootstrap"):
        portfolio.scenarios(window, 10, method="garch")


def test_tail_checks_see_kde_thinning_the_tails_and_fhs_keeping_them(returns):
    window = returns.loc["2007-01-01":"2008-12-31"]
    checks = portfolio.tail_checks(window.to_numpy(), {
        "kde (h=1.0)": portfolio.scenarios(window, 5000, bandwidth=1.0, seed=0),
        "historical": portfolio.scenarios(window, 0, method="historical"),
        "fhs": portfolio.scenarios(window, 5000, method="fhs", seed=0)})
    history, kde = checks.loc["history"], checks.loc["kde (h=1.0)"]
    assert checks.loc["historical"].equals(history)
    assert kde["excess_kurtosis"] < 0.5 * history["excess_kurtosis"]  # measured 7.6 → 3.1 over 2007–08
    assert kde["tail_correlation"] < history["tail_correlation"] and kde["ew_cvar99"] < history["ew_cvar99"]
    assert checks.loc["fhs", "excess_kurtosis"] > kde["excess_kurtosis"]


def test_simulated_universe_is_reproducible_and_correlated_like_the_real_one(returns):
    window = returns.iloc[-1008:]
    sim = portfolio.simulate_universe(window, 120, seed=4)
    assert sim.shape == (1008, 120) and sim.equals(portfolio.simulate_universe(window, 120, seed=4))
    off_diag = lambda c: c[np.triu_indices_from(c, 1)].mean()  # noqa: E731
    assert off_diag(np.corrcoef(sim.T.to_numpy())) == pytest.approx(off_diag(window.corr().to_numpy()), abs=0.15)
    assert sim.std().median() == pytest.approx(window.std().median(), rel=0.5)


def test_frontier_is_monotone_and_fully_invested(returns):
    scen = portfolio.scenarios(returns.iloc[-504:], 1000, method="bootstrap", seed=0)
    frontier = portfolio.efficient_frontier(scen, n_points=6, upper=0.3)
    assert np.all(np.diff(frontier["cvar"]) >= -1e-10) and np.all(np.diff(frontier["expected_return"]) > 0)
    weights = frontier[list(range(20))].to_numpy()
    assert np.allclose(weights.sum(axis=1), 1) and (weights >= -1e-9).all() and (weights <= 0.3 + 1e-9).all()
    assert frontier["expected_return"].iloc[-1] == pytest.approx(portfolio.max_return(scen.mean(axis=0), upper=0.3), rel=1e-4)


def test_cardinality_matches_brute_force_over_all_pairs(returns):
    scen = portfolio.scenarios(returns.iloc[-504:, :7], 400, method="bootstrap", seed=2)
    best = min(cvar.solve(cvar.CVaRProblem(scen[:, list(pair)])).cvar for pair in itertools.combinations(range(7), 2))
    sol = portfolio.cardinality(scen, 2)
    assert np.sum(sol.weights > 1e-9) <= 2 and sol.status == "optimal"
    assert sol.cvar == pytest.approx(best, rel=1e-6)
    with pytest.raises(InputError, match="between 1"):
        portfolio.cardinality(scen, 0)


@pytest.mark.parametrize("strategy", pb.STRATEGIES)
def test_each_rebalance_sees_only_the_past(returns, strategy):
    # every day from the rebalance date on is poisoned with NaN, which CVaRProblem and min_variance refuse:
    # a window that reached one day too far (data[t-L+1:t+1]) would raise instead of matching
    data = returns.iloc[-700:, :8].to_numpy()
    for t in (300, 450, 600):
        poisoned = data.copy()
        poisoned[t:] = np.nan
        clean = pb.rebalance_weights(data, t, strategy, lookback=252, upper=0.3, previous=np.full(8, 1 / 8), cost=0.002)
        blind = pb.rebalance_weights(poisoned, t, strategy, lookback=252, upper=0.3, previous=np.full(8, 1 / 8), cost=0.002)
        a = clean.weights if hasattr(clean, "weights") else clean
        b = blind.weights if hasattr(blind, "weights") else blind
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError):
        leaky = data.copy()
        leaky[300:] = np.nan
        pb.rebalance_weights(leaky, 301, strategy, lookback=252, upper=0.3, previous=np.full(8, 1 / 8), cost=0.002) \
            if strategy != "Equal weight" else (_ for _ in ()).throw(InputError("equal weight reads no data"))


def test_backtest_charges_costs_and_the_cost_aware_strategy_trades_less(returns):
    data = returns.iloc[-900:, :8]
    free = pb.backtest(data, lookback=252, rebalance_every=21, upper=0.3, cost_bp=0.0)
    paid = pb.backtest(data, lookback=252, rebalance_every=21, upper=0.3, cost_bp=50.0)
    gross = free.daily["Min-CVaR"].sum() - paid.daily["Min-CVaR"].sum()
    assert gross == pytest.approx(0.005 * paid.turnover["Min-CVaR"].sum(), rel=1e-9)  # 50 bp per unit traded
    assert paid.turnover["Min-CVaR, cost-aware"].iloc[1:].mean() < paid.turnover["Min-CVaR"].iloc[1:].mean()
    assert set(paid.daily.columns) == set(pb.STRATEGIES) and paid.forecast["var"].notna().all()


def test_min_variance_matches_an_exact_qp():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, (504, 12)) @ rng.normal(0, 1, (12, 12)) * 0.3
    w = pb.min_variance(x, upper=0.2)
    cov = np.cov(x, rowvar=False)
    # every feasible perturbation that keeps the budget and the bounds does not lower the variance
    for i, j in itertools.permutations(range(12), 2):
        step = min(w[j], 0.2 - w[i], 1e-3)
        if step > 1e-9:
            moved = w.copy()
            moved[i] += step
            moved[j] -= step
            assert moved @ cov @ moved >= w @ cov @ w - 1e-15
    assert w.sum() == pytest.approx(1) and (w >= 0).all() and (w <= 0.2 + 1e-12).all()


def test_sharpe_test_sees_a_real_edge_and_not_noise():
    rng = np.random.default_rng(1)
    common = rng.standard_t(4, 5000) * 0.01
    noise = pb.sharpe_test(common + rng.normal(0.0003, 0.002, 5000), common + rng.normal(0.0003, 0.002, 5000))
    edge = pb.sharpe_test(common + rng.normal(0.0008, 0.002, 5000), common + rng.normal(0.0, 0.002, 5000))
    assert noise.p_hac > 0.05 and noise.ci_low < 0 < noise.ci_high
    assert edge.p_hac < 0.01 and edge.ci_low > 0 and edge.difference > 0


def test_var_backtest_by_hand():
    returns_ = -np.array([0.0] * 95 + [0.05] * 5)  # 5 losses of 5% in 100 days
    forecast = np.column_stack([np.full(100, 0.04), np.full(100, 0.05)])
    result = pb.var_backtest(returns_, forecast)
    assert result["breaches"] == 5 and result["breach_rate"] == 0.05 and result["kupiec_p"] == pytest.approx(1.0)
    assert result["shortfall_ratio"] == pytest.approx(1.0)
    clustered = pb.var_backtest(-np.array([0.0] * 80 + [0.05] * 20), forecast)
    assert clustered["kupiec_p"] < 1e-4 and clustered["christoffersen_p"] < 1e-4


def test_risk_free_and_total_return_market_come_from_french_data():
    ff = portfolio.load_fama_french()
    assert ff.index[0] == pd.Timestamp("1926-07-31") and ff.index[-1] == pd.Timestamp("2018-11-30")
    assert ff.loc["2008-10-31", "market"] == pytest.approx(-0.1723 + 0.0008, abs=1e-4)
    days = pd.bdate_range("2008-01-01", "2008-12-31")
    rf = portfolio.daily_risk_free(days, ff["risk_free"])
    assert (1 + rf).prod() - 1 == pytest.approx((1 + ff.loc["2008", "risk_free"]).prod() - 1, rel=1e-9)


def test_performance_by_hand():
    daily = pd.DataFrame({"flat": np.full(252, 0.001), "crash": [0.1, -0.5] + [0.0] * 250})
    stats = pb.performance(daily)
    assert stats.loc["flat", "annual_return"] == pytest.approx(1.001**252 - 1)
    assert stats.loc["flat", "max_drawdown"] == 0
    assert stats.loc["crash", "max_drawdown"] == pytest.approx(0.5)
    assert stats.loc["crash", "daily_cvar95"] == pytest.approx(cvar.cvar(-daily["crash"].to_numpy()).cvar)


@pytest.mark.parametrize(("policy", "report", "chosen"), [
    ("auto", {"cudf": False, "installed": ("cuopt",)}, "ipm"),  # no library computed on a CUDA device
    ("auto", {"cudf": True, "torch_cuda": 1, "installed": ()}, "ipm"),  # a GPU, cuOpt not installed
    ("auto", {"cudf": True, "torch_cuda": 1, "installed": ("cuopt",)}, "cuopt"),
    ("cpu", {"cudf": True, "torch_cuda": 1, "installed": ("cuopt",)}, "ipm"),  # SPARKBOOKS_ACCELERATOR=cpu
])
def test_auto_solver_follows_the_device_policy(monkeypatch, policy, report, chosen):
    from sparkbooks import devices
    from sparkbooks.settings import settings

    monkeypatch.setattr(settings, "accelerator", policy)
    devices.refresh(devices.Devices(policy=policy, **report))
    try:
        choice = portfolio.pick_solver("auto")
    finally:
        devices.refresh()
    assert choice.name == chosen and choice.reason == devices.Devices(policy=policy, **report).reason("cuopt")


def test_solver_choice_by_name():
    assert portfolio.pick_solver("highs") == portfolio.SolverChoice("highs", "requested")
    with pytest.raises(InputError, match="solver"):
        portfolio.pick_solver("gurobi")
