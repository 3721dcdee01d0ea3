"""MuJoCo tasks through Gymnasium: which exist, what "solved" means, and how fast they simulate."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ..exceptions import InputError, MissingDependencyError

__all__ = ["FAST_TASK", "check_task", "mujoco_tasks", "play", "random_returns", "simulation_rate", "threshold", "throughput"]

#: Solves within the cpu profile's minutes (Gymnasium's threshold: 950 of a possible 1,000).
FAST_TASK = "InvertedPendulum-v5"


def _gym():
    try:
        import gymnasium  # noqa: PLC0415
        import mujoco  # noqa: F401, PLC0415
    except ImportError:
        raise MissingDependencyError("MuJoCo and Gymnasium are not installed: `pip install -e '.[robot]'` "
                                     "(gymnasium[mujoco], stable-baselines3).") from None
    return gymnasium


def mujoco_tasks() -> list[str]:
    """The newest version of every registered MuJoCo task (older ones, v2/v3, need the retired mujoco-py)."""
    gym = _gym()
    newest: dict[str, tuple[int, str]] = {}
    for env_id, spec in gym.registry.items():
        if "mujoco" in str(spec.entry_point).lower():
            version = spec.version or 0
            if version >= newest.get(spec.name, (-1, ""))[0]:
                newest[spec.name] = (version, env_id)
    return sorted(env_id for _, env_id in newest.values())


def check_task(env_id: str):
    """The registry entry of ``env_id``; an unknown id is refused with the MuJoCo tasks that exist."""
    gym = _gym()
    if env_id not in gym.registry:
        raise InputError(f"Unknown environment {env_id!r}. MuJoCo tasks installed here: {', '.join(mujoco_tasks())}. "
                         f"{FAST_TASK} solves in minutes on a CPU.")
    return gym.registry[env_id]


def threshold(env_id: str) -> float | None:
    """Gymnasium's published "solved" return for ``env_id`` (``reward_threshold``), or None where it gives none."""
    return check_task(env_id).reward_threshold


def simulation_rate(env_id: str, n_envs: int, *, steps: int = 200, seed: int = 0) -> dict:
    """Environment steps per second of ``n_envs`` copies stepped together with random actions (no policy).

    Gymnasium's vector API (``gym.make_vec``, synchronous: one process steps every copy, as the
    trainer's own vector env does); auto-reset included. One warm-up step is not timed.
    """
    gym = _gym()
    check_task(env_id)
    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync")
    try:
        envs.reset(seed=seed)
        envs.action_space.seed(seed)
        envs.step(envs.action_space.sample())
        start = time.perf_counter()
        for _ in range(steps):
            envs.step(envs.action_space.sample())
        seconds = time.perf_counter() - start
    finally:
        envs.close()
    return {"n_envs": n_envs, "env_steps": steps * n_envs, "seconds": seconds, "steps_per_s": steps * n_envs / seconds}


def throughput(env_id: str, n_envs: Sequence[int] = (1, 4, 16, 64), *, steps: int = 200, seed: int = 0):
    """:func:`simulation_rate` for each ``n_envs``, as a table."""
    import pandas as pd  # noqa: PLC0415

    return pd.DataFrame([simulation_rate(env_id, n, steps=steps, seed=seed) for n in n_envs]).set_index("n_envs")


def random_returns(env_id: str, *, episodes: int = 10, seed: int = 0) -> np.ndarray:
    """Episode returns of uniformly random actions: the floor any trained policy must clear."""
    return play(env_id, None, episodes=episodes, seed=seed)


def play(env_id: str, policy: Callable[[np.ndarray], np.ndarray] | None, *, episodes: int = 10,
         seed: int = 0) -> np.ndarray:
    """Returns of ``episodes`` episodes in Gymnasium's own ``env_id`` (C MuJoCo), reset with seeds ``seed``, ``seed + 1``, …

    ``policy`` maps an observation to an action; None plays uniformly random actions (seeded by ``seed``).
    """
    gym = _gym()
    check_task(env_id)
    env = gym.make(env_id)
    env.action_space.seed(seed)
    act = policy or (lambda _obs: env.action_space.sample())
    returns = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return np.asarray(returns)
