"""Portfolio pipeline: real data, scenarios, frontier, cardinality vs brute force, a backtest that cannot see the future."""

import itertools

import numpy as np
import pandas as pd
import pytest

from sparkbooks import cvar, portfolio
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


def test_kde_scenarios_keep_each_assets_variance_and_bootstrap_reuses_days(returns):
    window = returns.iloc[-504:]
    scen = portfolio.scenarios(window, 4000, seed=0)
    assert scen.shape == (4000, 20)
    assert np.allclose(scen.std(axis=0), window.std().to_numpy(), rtol=0.1)
    assert np.abs(np.corrcoef(scen.T) - window.corr().to_numpy()).max() < 0.25
    boot = portfolio.scenarios(window, 50, method="bootstrap", seed=1)
    assert all((window.to_numpy() == row).all(axis=1).any() for row in boot)
    with pytest.raises(InputError, match="kde"):
        portfolio.scenarios(window, 10, method="garch")


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


def test_backtest_weights_do_not_depend_on_future_prices(returns):
    data = returns.iloc[-900:, :8]
    cut = 700  # shuffle every day from here on
    shuffled = data.copy()
    shuffled.iloc[cut:] = data.iloc[cut:].sample(frac=1.0, random_state=0).to_numpy()
    before = portfolio.backtest(data, lookback=252, rebalance_every=63, n_scenarios=300).weights
    after = portfolio.backtest(shuffled, lookback=252, rebalance_every=63, n_scenarios=300).weights
    known = before.index <= data.index[cut]
    assert known.sum() >= 3
    pd.testing.assert_frame_equal(before[known], after[known])
    assert not before[~known].equals(after[~known])  # and the shuffle did change later decisions


def test_performance_by_hand():
    daily = pd.DataFrame({"flat": np.full(252, 0.001), "crash": [0.1, -0.5] + [0.0] * 250})
    stats = portfolio.performance(daily)
    assert stats.loc["flat", "annual_return"] == pytest.approx(1.001**252 - 1)
    assert stats.loc["flat", "max_drawdown"] == 0
    assert stats.loc["crash", "max_drawdown"] == pytest.approx(0.5)
    assert stats.loc["crash", "daily_cvar95"] == pytest.approx(cvar.cvar(-daily["crash"].to_numpy()).cvar)


def test_solver_choice_without_a_gpu():
    assert portfolio.pick_solver("auto").name == "ipm"
    assert portfolio.pick_solver("highs") == portfolio.SolverChoice("highs", "requested")
    with pytest.raises(InputError, match="solver"):
        portfolio.pick_solver("gurobi")
