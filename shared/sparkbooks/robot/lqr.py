"""The classical controller a learned pendulum policy must be held against: LQR on MuJoCo's own linearised dynamics.

:func:`linearise` takes Gymnasium's environment as it is (its MJCF, its integrator, its frame skip) and
differentiates one *environment* step — ``frame_skip`` calls of ``mj_step`` — by central finite differences
around the upright rest state (all joint positions and velocities 0, control 0). :func:`lqr_gain` solves the
discrete algebraic Riccati equation (``scipy.linalg.solve_discrete_are``) for ``u = −K x``; the controller
clips ``u`` to the actuator's control range, as the environment does. With ``Q = I`` and ``R = I`` on
InvertedPendulum-v5 this gives ``K ≈ [−0.60, −7.2, −1.03, −1.34]`` (cart position, pole angle, cart velocity,
pole angular velocity) and the task's 1,000 steps on every fresh episode: no learning needed.

Only tasks whose observation *is* the state ``[qpos, qvel]`` (InvertedPendulum) are accepted: a controller
designed on the state cannot read another task's observation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..exceptions import InputError
from .tasks import _gym

__all__ = ["Controller", "LQR_TASKS", "Linearised", "RandomPolicy", "controller", "linearise", "lqr_gain", "per_seed_returns"]

#: Tasks whose observation is the full state [qpos, qvel], so a state-feedback gain applies to it directly.
LQR_TASKS = ("InvertedPendulum-v5",)


def _check(env_id: str) -> None:
    if env_id not in LQR_TASKS:
        raise InputError(f"The LQR baseline is defined for {', '.join(LQR_TASKS)} (observation = [qpos, qvel]); "
                         f"{env_id!r} observes something else. Compare against random actions only, or write its "
                         f"classical controller.")


class Linearised(NamedTuple):
    """``x' ≈ a x + b u``: one environment step around the upright rest state (unpacks as ``a, b``)."""

    a: np.ndarray
    b: np.ndarray


def linearise(env_id: str = "InvertedPendulum-v5", *, eps: float = 1e-6) -> Linearised:
    """``A`` (n × n) and ``B`` (n × m) of one environment step ``x' ≈ A x + B u`` around the upright rest state.

    ``x`` is ``[qpos, qvel]``; central differences of MuJoCo's own step (``mj_forward`` after setting the
    state, then ``frame_skip`` × ``mj_step``), so the model's integrator and timestep are the ones used.
    """
    import mujoco  # noqa: PLC0415

    _check(env_id)
    env = _gym().make(env_id)
    try:
        env.reset(seed=0)
        raw = env.unwrapped
        model, data, skip = raw.model, raw.data, raw.frame_skip
        nq, nv, nu = model.nq, model.nv, model.nu

        def step(x: np.ndarray, u: np.ndarray) -> np.ndarray:
            mujoco.mj_resetData(model, data)
            data.qpos[:], data.qvel[:], data.ctrl[:] = x[:nq], x[nq:], u
            mujoco.mj_forward(model, data)
            for _ in range(skip):
                mujoco.mj_step(model, data)
            return np.concatenate([data.qpos, data.qvel])

        x0, u0 = np.zeros(nq + nv), np.zeros(nu)
        a = np.column_stack([(step(x0 + eps * e, u0) - step(x0 - eps * e, u0)) / (2 * eps) for e in np.eye(nq + nv)])
        b = np.column_stack([(step(x0, u0 + eps * e) - step(x0, u0 - eps * e)) / (2 * eps) for e in np.eye(nu)])
    finally:
        env.close()
    return Linearised(a, b)


def lqr_gain(a: np.ndarray, b: np.ndarray, *, q: np.ndarray | None = None, r: np.ndarray | None = None) -> np.ndarray:
    """The discrete LQR gain ``K`` (m × n) minimising Σ xᵀQx + uᵀRu under ``u = −K x`` (defaults: identities)."""
    from scipy.linalg import solve_discrete_are  # noqa: PLC0415

    q = np.eye(a.shape[0]) if q is None else np.asarray(q, dtype=float)
    r = np.eye(b.shape[1]) if r is None else np.asarray(r, dtype=float)
    p = solve_discrete_are(a, b, q, r)
    return np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)


@dataclass(frozen=True)
class Controller:
    """``u = clip(−K x)``: a policy for :func:`sparkbooks.robot.tasks.play` (observation → action)."""

    gain: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(-self.gain @ np.asarray(obs, dtype=float), self.low, self.high).astype(np.float32)

    def predict(self, observation, *, state=None, episode_start=None, deterministic: bool = True):
        """Stable-Baselines3's policy interface (a batch of observations → actions), for ``train.evaluate``."""
        obs = np.atleast_2d(np.asarray(observation, dtype=float))
        return np.clip(obs @ -self.gain.T, self.low, self.high).astype(np.float32), state


class RandomPolicy:
    """Uniformly random actions behind Stable-Baselines3's ``predict``, seeded: the floor, scored like a policy."""

    def __init__(self, env_id: str, seed: int = 0) -> None:
        probe = _gym().make(env_id)
        self.space = probe.action_space
        probe.close()
        self.space.seed(seed)

    def predict(self, observation, *, state=None, episode_start=None, deterministic: bool = True):
        n = np.atleast_2d(np.asarray(observation)).shape[0]
        return np.stack([self.space.sample() for _ in range(n)]), state


def controller(env_id: str = "InvertedPendulum-v5", *, q: np.ndarray | None = None,
               r: np.ndarray | None = None) -> Controller:
    """The LQR controller of ``env_id`` (linearised with :func:`linearise`, gain from :func:`lqr_gain`)."""
    a, b = linearise(env_id)
    probe = _gym().make(env_id)
    try:
        low, high = probe.action_space.low.astype(float), probe.action_space.high.astype(float)
    finally:
        probe.close()
    return Controller(lqr_gain(a, b, q=q, r=r), low, high)


def per_seed_returns(env_id: str, policy, seeds: Sequence[int], *, episodes: int = 4, offset: int = 50_000) -> dict:
    """``{seed: returns}``: for each seed the ``episodes`` fresh episodes a trained seed is scored on.

    Scored through :func:`sparkbooks.robot.train.evaluate` with ``seed = offset + seed`` — the same
    environments, started from the same states, as ``evaluate(ppo_policy, env_id, episodes=…, seed=offset + seed)``
    — so a per-seed comparison pairs like with like. ``policy`` is anything with Stable-Baselines3's
    ``predict`` (a :class:`Controller`, a :class:`RandomPolicy` seeded with the seed, a trained model).
    """
    from .train import evaluate  # noqa: PLC0415

    return {s: evaluate(policy, env_id, episodes=episodes, seed=offset + s) for s in seeds}
