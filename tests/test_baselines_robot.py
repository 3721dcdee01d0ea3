"""robot-rl's classical baseline: LQR on MuJoCo's linearised InvertedPendulum-v5, and random actions, per seed."""

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("gymnasium")

from sparkbooks.exceptions import InputError  # noqa: E402
from sparkbooks.robot import lqr  # noqa: E402

#: The gain the practitioners' review found (u = K x there; u = −K x here, so the same numbers up to sign).
REVIEW_K = np.array([-0.59, -7.59, -1.05, -1.36])


def test_linearisation_is_the_upright_pendulum_and_the_gain_matches_the_review():
    a, b = lqr.linearise("InvertedPendulum-v5")
    assert a.shape == (4, 4) and b.shape == (4, 1)
    assert np.abs(np.linalg.eigvals(a)).max() > 1.0  # upright is unstable without control
    gain = lqr.lqr_gain(a, b)
    assert np.abs(np.linalg.eigvals(a - b @ gain)).max() < 1.0  # and stable under u = −K x
    assert np.allclose(np.abs(gain[0]), np.abs(REVIEW_K), rtol=0.1), gain  # sign conventions differ
    assert np.sign(gain[0, 1]) == np.sign(gain[0, 0])  # angle and position gains push the same way


def test_lqr_scores_at_least_950_on_every_fresh_episode_and_random_does_not():
    control = lqr.controller("InvertedPendulum-v5")
    per_seed = lqr.per_seed_returns("InvertedPendulum-v5", control, [0, 1], episodes=3)
    assert sorted(per_seed) == [0, 1] and all(len(r) == 3 for r in per_seed.values())
    assert min(r.min() for r in per_seed.values()) >= 950
    floor = lqr.per_seed_returns("InvertedPendulum-v5", lqr.RandomPolicy("InvertedPendulum-v5", 0), [0], episodes=3)
    assert floor[0].max() < 100


def test_same_episodes_as_a_trained_policy_and_refused_elsewhere():
    control = lqr.controller("InvertedPendulum-v5")
    a = lqr.per_seed_returns("InvertedPendulum-v5", control, [3], episodes=2)
    b = lqr.per_seed_returns("InvertedPendulum-v5", control, [3], episodes=2)
    assert np.array_equal(a[3], b[3])
    action, _ = control.predict(np.zeros((2, 4)) + [0, 0.1, 0, 0])
    assert action.shape == (2, 1) and action.dtype == np.float32 and np.all(np.abs(action) <= 3)
    with pytest.raises(InputError, match="InvertedPendulum-v5"):
        lqr.linearise("InvertedDoublePendulum-v5")
