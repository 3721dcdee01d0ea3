"""Robustness: every controller scored on the same randomised C-MuJoCo models — mass, gear, action delay, sensor noise.

A policy that scores 1,000 on the model it trained on may fall on a robot whose pole is heavier,
whose motor is weaker, whose actions arrive a step late or whose sensors are noisy. Domain
randomisation's usual ranges (Isaac Lab's ``EventTerm`` randomisers, MuJoCo Playground's
``randomize`` functions) for a pendulum: pole mass ×U(0.5, 2) (inertia scaled with it, the same
shape), actuator gear ×U(0.7, 1.3), 0–2 control steps of action delay, Gaussian observation noise of
σ 0.01. :func:`draw` draws ``n`` such worlds once; :func:`score` plays every controller on *the same*
worlds from the same starts in Gymnasium's own environment (C MuJoCo, double precision), so a
difference between controllers is a difference between controllers, not between draws.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..exceptions import InputError
from . import lqr
from .tasks import _gym, check_task

__all__ = ["Perturbation", "ROBUST_TASKS", "TunedLQR", "corners", "draw", "play", "score", "tune_lqr"]

#: Tasks whose pole body and actuator the perturbations name.
ROBUST_TASKS = ("InvertedPendulum-v5",)


@dataclass(frozen=True)
class Perturbation:
    """One randomised world: pole mass and gear multipliers, action delay in control steps, observation noise σ."""

    mass_scale: float = 1.0
    gear_scale: float = 1.0
    delay: int = 0
    noise: float = 0.0


def draw(n: int, *, seed: int = 0, mass: tuple[float, float] = (0.5, 2.0), gear: tuple[float, float] = (0.7, 1.3),
         max_delay: int = 2, noise: float = 0.01) -> list[Perturbation]:
    """``n`` worlds: mass ×U(mass), gear ×U(gear), delay uniform in 0…``max_delay`` steps, noise σ ``noise``."""
    if n < 1 or max_delay < 0 or noise < 0 or not (0 < mass[0] <= mass[1]) or not (0 < gear[0] <= gear[1]):
        raise InputError(f"draw() needs n ≥ 1, max_delay ≥ 0, noise ≥ 0 and positive ranges low ≤ high; got n={n}, "
                         f"mass={mass}, gear={gear}, max_delay={max_delay}, noise={noise}.")
    rng = np.random.default_rng(seed)
    return [Perturbation(float(rng.uniform(*mass)), float(rng.uniform(*gear)), int(rng.integers(0, max_delay + 1)),
                         float(noise)) for _ in range(n)]


def _perturbed(env_id: str, p: Perturbation):
    """Gymnasium's ``env_id`` with its model edited in place (edits survive resets: they live in the model)."""
    env = _gym().make(env_id)
    model = env.unwrapped.model
    pole = model.body("pole").id
    model.body_mass[pole] *= p.mass_scale
    model.body_inertia[pole] *= p.mass_scale  # same shape, heavier: inertia scales with mass
    model.actuator_gear[:, 0] *= p.gear_scale
    return env


def play(env_id: str, policy: Callable[[np.ndarray], np.ndarray], world: Perturbation, *, seed: int = 0) -> float:
    """One episode of ``policy`` in ``world``: the return (Gymnasium's reward, 1 per step upright, 1,000 at most).

    The policy sees ``obs + N(0, σ²)``; the action it returns reaches the motor ``delay`` steps later
    (zeros until then). Start state and noise are seeded by ``seed``.
    """
    if env_id not in ROBUST_TASKS:
        raise InputError(f"Perturbations are defined for {', '.join(ROBUST_TASKS)} (they name its pole and "
                         f"actuator), not {env_id!r}.")
    check_task(env_id)
    env = _perturbed(env_id, world)
    rng = np.random.default_rng(seed)
    try:
        obs, _ = env.reset(seed=seed)
        queue = deque([np.zeros(env.action_space.shape, dtype=np.float32)] * world.delay)
        total, done = 0.0, False
        while not done:
            queue.append(np.asarray(policy(obs + rng.normal(0.0, world.noise, obs.shape)), dtype=np.float32))
            obs, reward, terminated, truncated, _ = env.step(queue.popleft())
            total += float(reward)
            done = terminated or truncated
    finally:
        env.close()
    return total


def score(env_id: str, policies: Mapping[str, Callable[[np.ndarray], np.ndarray]], worlds: list[Perturbation], *,
          seed: int = 0):
    """Returns of every policy on every world (rows: worlds, with their perturbation; columns: policies).

    World ``i`` starts from reset seed ``seed + i`` for every policy: the same bodies, starts and noise draws.
    """
    import pandas as pd  # noqa: PLC0415

    if not worlds or not policies:
        raise InputError("score() needs at least one world and one policy.")
    rows = []
    for i, world in enumerate(worlds):
        rows.append(asdict(world) | {name: play(env_id, act, world, seed=seed + i) for name, act in policies.items()})
    return pd.DataFrame(rows)


def corners(*, mass: tuple[float, float] = (0.5, 2.0), gear: tuple[float, float] = (0.7, 1.3), max_delay: int = 2,
            noise: float = 0.01) -> list[Perturbation]:
    """The randomisation box's hardest corners: each mass and gear extreme, at the longest delay (four worlds).

    Random draws average over the box; a robot that is heavy *and* weak *and* late is its worst case.
    """
    return [Perturbation(float(m), float(g), int(max_delay), float(noise)) for m in mass for g in gear]


@dataclass(frozen=True)
class TunedLQR:
    """The LQR whose control weight ``r`` did best on the tuning worlds, and every candidate's tally."""

    controller: Any
    r: float
    table: Any  # pandas DataFrame: per r, worlds held and mean return on the tuning worlds, and at their longest delay


def tune_lqr(env_id: str, worlds: list[Perturbation], *, threshold: float, r_grid: tuple[float, ...] = (1, 10, 100, 1000),
             seed: int = 0) -> TunedLQR:
    """The control engineer's answer to randomisation: detune LQR (a larger control weight ``R``, gentler gains,
    more delay margin) and keep the ``R`` that holds most of ``worlds``; among those holding as many, the one
    with the higher mean return on the same worlds made harder — each at the longest delay among them — then
    on ``worlds`` as drawn. Where candidates still tie, the middle one on the grid's log scale (the centre of
    the robust range, with margin on both sides).

    ``worlds`` must be drawn apart from the worlds the controller is then scored on (another seed), or the
    choice would be selected on its own test; the box's :func:`corners` are left for testing too.
    """
    import pandas as pd  # noqa: PLC0415

    if not r_grid or min(r_grid) <= 0:
        raise InputError(f"tune_lqr() needs positive control weights; got r_grid={r_grid}.")
    candidates = {float(r): lqr.controller(env_id, r=[[float(r)]]) for r in r_grid}
    returns = score(env_id, candidates, worlds, seed=seed)[list(candidates)]
    late = [Perturbation(w.mass_scale, w.gear_scale, max(v.delay for v in worlds), w.noise) for w in worlds]
    hard = score(env_id, candidates, late, seed=seed + len(worlds))[list(candidates)]
    table = pd.DataFrame({"worlds_held": (returns >= threshold).sum(), "mean_return": returns.mean(),
                          "late_mean_return": hard.mean(), "late_least_return": hard.min()}).rename_axis("R")
    score_of = {r: (table.loc[r, "worlds_held"], table.loc[r, "late_mean_return"], table.loc[r, "mean_return"])
                for r in candidates}
    tied = sorted(r for r in candidates if score_of[r] == max(score_of.values()))
    best = tied[(len(tied) - 1) // 2]  # the middle of the tied range (the lower middle of an even count)
    return TunedLQR(candidates[best], best, table)
