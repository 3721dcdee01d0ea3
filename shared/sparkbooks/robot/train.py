"""PPO (Stable-Baselines3) on a MuJoCo task until it is solved — evaluated, checkpointed, resumable, stopped on NaN.

Why Stable-Baselines3: its PPO runs Gymnasium environments as they are, saves and loads whole
training states (weights, optimizer, step count), and checks observations and rewards for NaN in
its vector env. Isaac Lab's ``rsl_rl`` PPO has the same *kinds* of knobs (clip, GAE λ, epochs,
mini-batches, learning rate) but not the same values or schedule: rsl_rl adapts its learning rate
to a target KL, SB3 has no such schedule, and the networks differ. A setting found here is a
starting point for Isaac Lab, not a setting that carries over (see :mod:`.batched`).

Timing: ``seconds`` is training alone (collection + updates), evaluation is kept apart in
``eval_seconds`` — the same split :func:`sparkbooks.robot.batched.train` makes, so the two trainers'
times can be set side by side.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..exceptions import CheckpointMismatchError, InputError, MissingDependencyError, TrainingDivergedError
from ..fileio import write_json_atomic
from .tasks import check_task, threshold as task_threshold

__all__ = ["Checkpoint", "PPOSettings", "TrainResult", "actor", "checkpoint_paths", "curves", "evaluate", "load_policy", "train", "update_rate"]


@dataclass(frozen=True)
class PPOSettings:
    """PPO's knobs (Stable-Baselines3 names). The defaults solve InvertedPendulum-v5 in tens of thousands of steps."""

    n_steps: int = 512  # steps per environment per rollout
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    net: tuple[int, ...] = (64, 64)

    def kwargs(self) -> dict:
        values = dataclasses.asdict(self)
        net = list(values.pop("net"))
        return values | {"policy_kwargs": {"net_arch": {"pi": net, "vf": net}}}


@dataclass
class TrainResult:
    """One training run: its evaluation curve, when (steps, seconds) it first reached the threshold, where it is saved."""

    env_id: str
    seed: int
    n_envs: int
    threshold: float | None
    curve: list[dict] = field(default_factory=list)  # {"steps", "seconds", "mean", "std"} per evaluation
    steps: int = 0
    seconds: float = 0.0  # training wall time (collection + updates), summed over resumes; evaluation excluded
    eval_seconds: float = 0.0  # evaluation wall time, summed over resumes (kept apart, as rsl_rl's trainer does)
    solved_steps: int | None = None
    solved_s: float | None = None
    resumed_from: int = 0  # steps already done when this call started (0: a fresh run)
    checkpoint: Path | None = None

    @property
    def solved(self) -> bool:
        """An evaluation reached the threshold (training stopped there). A selection: judge the policy on fresh
        episodes (:func:`sparkbooks.robot.stats.success_rate`) before calling it solved."""
        return self.solved_steps is not None

    def frame(self):
        import pandas as pd  # noqa: PLC0415

        return pd.DataFrame(self.curve, columns=["steps", "seconds", "mean", "std"])


def _sb3():
    try:
        import stable_baselines3  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("Stable-Baselines3 is not installed: `pip install -e '.[robot]'`.") from None
    return stable_baselines3


class Checkpoint(NamedTuple):
    """Where one task and seed is saved: the policy (an SB3 zip) and its record (JSON: steps, time, curve, settings)."""

    policy: Path
    record: Path


def checkpoint_paths(out: Path, env_id: str, seed: int) -> Checkpoint:
    """The :class:`Checkpoint` files of ``env_id`` trained with ``seed`` in the folder ``out``."""
    stem = Path(out) / f"{env_id}-seed{seed}"
    return Checkpoint(stem.with_suffix(".zip"), stem.with_suffix(".json"))


def _make_env(env_id: str, n_envs: int, seed: int):
    from stable_baselines3.common.env_util import make_vec_env  # noqa: PLC0415
    from stable_baselines3.common.vec_env import VecCheckNan  # noqa: PLC0415

    # raise (not warn) on NaN or inf in observations, rewards or actions: training on them silently ruins the policy
    return VecCheckNan(make_vec_env(env_id, n_envs=n_envs, seed=seed), raise_exception=True)


def _quiet(model):
    """Give ``model`` a logger with no outputs: without one, every ``learn`` call makes an empty ``/tmp/SB3-<time>`` folder."""
    from stable_baselines3.common.logger import Logger  # noqa: PLC0415

    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def load_policy(path: Path, env_id: str):
    """A saved PPO policy for ``env_id``; one saved for other observation or action shapes is refused with both."""
    sb3 = _sb3()
    import gymnasium as gym  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise InputError(f"No checkpoint at {path}: train first (sb.robot.train.train) or check the folder.")
    model = sb3.PPO.load(path, device="cpu")
    env = gym.make(check_task(env_id).id)
    want_obs, want_act = env.observation_space.shape, env.action_space.shape
    env.close()
    if model.observation_space.shape != want_obs or model.action_space.shape != want_act:
        raise CheckpointMismatchError(
            f"{path.name} was saved for observations {model.observation_space.shape} and actions "
            f"{model.action_space.shape}; {env_id} has observations {want_obs} and actions {want_act}. "
            "Load it with the task it was trained on, or train this task in a new folder.")
    return model


def actor(model) -> Callable[[np.ndarray], np.ndarray]:
    """A trained SB3 model as observation → action: its mean action clipped to the action space, as ``predict``
    gives it, without ``predict``'s per-call checks (a few times faster in a loop of single observations)."""
    import torch  # noqa: PLC0415

    policy = model.policy.eval()
    low, high = model.action_space.low, model.action_space.high

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            action = policy._predict(torch.as_tensor(np.asarray(obs), dtype=torch.float32)[None], deterministic=True)
        return np.clip(action[0].numpy(), low, high)

    return act


def evaluate(model, env_id: str, *, episodes: int = 10, seed: int = 10_000) -> np.ndarray:
    """Returns of ``episodes`` deterministic episodes (the policy's mean action), on environments seeded apart from training."""
    from stable_baselines3.common.evaluation import evaluate_policy  # noqa: PLC0415

    env = _make_env(env_id, 1, seed)
    try:
        returns, _ = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True, return_episode_rewards=True)
    finally:
        env.close()
    return np.asarray(returns, dtype=float)


def _finite(model) -> bool:
    return all(bool(np.isfinite(p.detach().numpy()).all()) for p in model.policy.parameters())


def _as_json(settings: PPOSettings) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(settings)))  # tuples become lists, as they come back from the record


def _save(model, result: TrainResult, settings: PPOSettings, policy: Path, record: Path) -> None:
    tmp = policy.with_name(f".{policy.stem}.partial.zip")
    model.save(tmp)
    os.replace(tmp, policy)  # a crash mid-save leaves the previous checkpoint whole
    write_json_atomic(record, {"env_id": result.env_id, "seed": result.seed, "n_envs": result.n_envs,
                               "threshold": result.threshold, "curve": result.curve, "steps": result.steps,
                               "seconds": result.seconds, "eval_seconds": result.eval_seconds,
                               "solved_steps": result.solved_steps,
                               "solved_s": result.solved_s, "settings": _as_json(settings)})


def train(env_id: str, *, out: Path, seed: int = 0, n_envs: int = 4, max_steps: int = 200_000, eval_every: int = 8192,
          eval_episodes: int = 10, threshold: float | None = None, settings: PPOSettings = PPOSettings(),
          resume: bool = True, threads: int = 1, on_eval: Callable[[dict], None] | None = None) -> TrainResult:
    """Train PPO on ``env_id`` until its evaluation mean reaches ``threshold`` (default: Gymnasium's) or ``max_steps``.

    Every ``eval_every`` steps (rounded up to whole rollouts): check the weights are finite, save
    the policy and its record atomically, then evaluate ``eval_episodes`` deterministic episodes. A
    run whose checkpoint exists in ``out`` continues from it (weights, optimizer, step count; the
    environments start new episodes); a finished one is returned as it is. NaN or inf in
    observations, rewards, actions or weights stops training with :class:`TrainingDivergedError`,
    naming the step and the last good checkpoint.
    """
    sb3 = _sb3()
    import torch  # noqa: PLC0415

    check_task(env_id)
    threshold = task_threshold(env_id) if threshold is None else threshold
    if threshold is None:
        raise InputError(f"{env_id} has no published threshold: pass threshold=… (a target mean return).")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    policy, record = checkpoint_paths(out, env_id, seed)
    torch.set_num_threads(threads)  # a 64×64 MLP trains faster on one thread than split across cores
    env = _make_env(env_id, n_envs, seed)
    result = TrainResult(env_id, seed, n_envs, threshold, checkpoint=policy)
    try:
        if resume and policy.is_file() and record.is_file():
            saved = json.loads(record.read_text())
            if saved["settings"] != _as_json(settings) or saved["n_envs"] != n_envs:
                raise InputError(f"{policy} was trained with other settings or n_envs ({saved['n_envs']}, "
                                 f"{saved['settings']}); resume with those, or train in a new folder.")
            model = _quiet(load_policy(policy, env_id))
            model.set_env(env)
            result.curve, result.steps, result.seconds = saved["curve"], saved["steps"], saved["seconds"]
            result.eval_seconds = saved.get("eval_seconds", 0.0)
            result.solved_steps, result.solved_s = saved["solved_steps"], saved["solved_s"]
            result.resumed_from = result.steps
            if result.solved or result.steps >= max_steps:
                return result
        else:
            model = _quiet(sb3.PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **settings.kwargs()))
        rollout = settings.n_steps * n_envs
        chunk = max(1, -(-eval_every // rollout)) * rollout
        good = result.steps
        while result.steps < max_steps and not result.solved:
            start = time.perf_counter()
            try:
                model.learn(chunk, reset_num_timesteps=False, progress_bar=False)
                learned = time.perf_counter()
                if not _finite(model):
                    raise TrainingDivergedError(_diverged(env_id, seed, model.num_timesteps,
                                                          "the policy's weights hold NaN or inf", policy, good))
                returns = evaluate(model, env_id, episodes=eval_episodes, seed=seed + 10_000)
            except ValueError as exc:  # VecCheckNan: NaN or inf reached the environment or came out of it
                what = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                if "nan" not in what.lower() and "inf" not in what.lower():
                    raise
                raise TrainingDivergedError(_diverged(env_id, seed, model.num_timesteps, what, policy, good)) from None
            result.seconds += learned - start  # training only: rsl_rl's trainer is timed the same way
            result.eval_seconds += time.perf_counter() - learned
            result.steps = int(model.num_timesteps)
            point = {"steps": result.steps, "seconds": round(result.seconds, 3),
                     "mean": float(returns.mean()), "std": float(returns.std())}
            result.curve.append(point)
            if point["mean"] >= threshold:
                result.solved_steps, result.solved_s = result.steps, result.seconds
            _save(model, result, settings, policy, record)
            good = result.steps
            if on_eval:
                on_eval(point)
    finally:
        env.close()
    return result


def _diverged(env_id: str, seed: int, step: int, what: str, policy: Path, good: int) -> str:
    kept = f"the last good checkpoint is {policy} (step {good:,})" if good else "no checkpoint was saved yet"
    return (f"Training {env_id} (seed {seed}) stopped at step {step:,}: {what}. Nothing after the last evaluation was "
            f"saved; {kept}. Lower learning_rate, check the environment's observations for NaN, then rerun: "
            "a run resumes from its checkpoint.")


def curves(runs: dict[int, TrainResult]):
    """Evaluation curves of several seeds on one step grid: mean, min and max over seeds, where every seed still runs.

    Seeds evaluate at the same step counts (same rollout size). A seed that stopped (it crossed the
    threshold, or diverged) has no measurement after its stop, and none is invented: past the first
    stop ``mean``, ``low`` and ``high`` are NaN and ``seeds`` says how many still run. (Holding a stopped
    seed's last value would plot a band that was never measured.)
    """
    import pandas as pd  # noqa: PLC0415

    table = pd.concat({seed: r.frame().set_index("steps")["mean"] for seed, r in runs.items()}, axis=1).sort_index()
    every = table.notna().all(axis=1)
    return pd.DataFrame({"mean": table.mean(axis=1).where(every), "low": table.min(axis=1).where(every),
                         "high": table.max(axis=1).where(every), "seeds": table.notna().sum(axis=1)})


def update_rate(env_id: str, n_envs: Sequence[int] = (1, 4, 16), *, seed: int = 0, samples: int = 2048, rollouts: int = 2,
                learning_rate: float = PPOSettings.learning_rate, threads: int = 1):
    """Environment steps per second of PPO training itself (simulation + policy + updates) for each ``n_envs``.

    Every rollout holds about ``samples`` steps in total, split over the environments (``n_steps =
    samples // n``), followed by PPO's epochs of updates; ``rollouts`` of them are timed after the
    model is built. The update work is the same at every ``n``; what changes is how the
    simulation is batched.
    """
    sb3 = _sb3()
    import pandas as pd  # noqa: PLC0415
    import torch  # noqa: PLC0415

    check_task(env_id)
    torch.set_num_threads(threads)
    rows = []
    for n in n_envs:
        settings = PPOSettings(n_steps=max(1, samples // n), learning_rate=learning_rate)
        env = _make_env(env_id, n, seed)
        try:
            model = _quiet(sb3.PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **settings.kwargs()))
            start = time.perf_counter()
            model.learn(samples * rollouts, progress_bar=False)
            seconds = time.perf_counter() - start
        finally:
            env.close()
        rows.append({"n_envs": n, "env_steps": int(model.num_timesteps), "seconds": seconds,
                     "steps_per_s": model.num_timesteps / seconds})
    return pd.DataFrame(rows).set_index("n_envs")
