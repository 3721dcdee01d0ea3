"""rsl_rl's PPO (Isaac Lab's) on thousands of MuJoCo Warp environments, scored in Gymnasium's own environment.

The batch is :mod:`.warp_batch` (MuJoCo Warp on an NVIDIA GPU or Warp's CPU device, checked against
MuJoCo's C engine by :mod:`.warp_conformance`); the task is :mod:`.pendulum_batch` (Gymnasium's
InvertedPendulum-v5 rules as an rsl_rl ``VecEnv``). :func:`ppo_config` holds the keys Isaac Lab's
``RslRlOnPolicyRunnerCfg`` passes (its Cartpole values), so a configuration found here is one Isaac Lab
reads as it is — the task, its rewards and its observation scales are not. A policy trained on the
batch is scored in Gymnasium's environment (the C engine), not in the batch it learned from.

Timing: ``BatchedRun.seconds`` is training alone (rsl_rl's collection + learning), evaluation kept
apart in ``eval_seconds`` — the same split :func:`sparkbooks.robot.train.train` makes.

The batch's names stay importable from here (``batched.choose_device``, ``batched.conformance``, …).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..exceptions import InputError, TrainingDivergedError
from ..fileio import write_json_atomic
from . import tasks
from .pendulum_batch import PendulumBatch, _rsl
from .warp_batch import _Batch  # noqa: F401  (kept where callers of the one-module version found it)
from .warp_batch import WarpDevice, choose_device, simulation_rate, task_model, throughput
from .warp_conformance import agreement, conformance

__all__ = ["BATCHED_TASKS", "BatchedRun", "PendulumBatch", "WarpDevice", "agreement", "choose_device", "conformance",
           "evaluate", "load_policy", "load_runner", "ppo_config", "simulation_rate", "task_model", "throughput", "train"]

#: Tasks whose rules (observation, reward, termination, reset) are written for the batch; any MuJoCo task simulates.
BATCHED_TASKS = ("InvertedPendulum-v5",)

def ppo_config(*, learning_rate: float = 1e-3, num_steps_per_env: int = 16, hidden: tuple[int, ...] = (32, 32)) -> dict:
    """rsl_rl's runner settings: Isaac Lab's Cartpole PPO (``CartpolePPORunnerCfg``), the same keys Isaac Lab passes."""
    return {
        "num_steps_per_env": num_steps_per_env, "save_interval": 50, "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": {"class_name": "PPO", "value_loss_coef": 1.0, "use_clipped_value_loss": True, "clip_param": 0.2,
                      "entropy_coef": 0.005, "num_learning_epochs": 5, "num_mini_batches": 4,
                      "learning_rate": learning_rate, "schedule": "adaptive", "gamma": 0.99, "lam": 0.95,
                      "desired_kl": 0.01, "max_grad_norm": 1.0},
        "actor": {"class_name": "MLPModel", "hidden_dims": list(hidden), "activation": "elu",
                  "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0}},
        "critic": {"class_name": "MLPModel", "hidden_dims": list(hidden), "activation": "elu"},
    }


def evaluate(policy: Callable, env_id: str, *, episodes: int = 5, seed: int = 10_000) -> np.ndarray:
    """Returns of ``episodes`` episodes of ``policy`` (observation array → action array) in Gymnasium's own environment.

    The C engine in double precision, Gymnasium's rules: the answer key for a policy trained in the batch.
    """
    return tasks.play(env_id, policy, episodes=episodes, seed=seed)


@dataclass
class BatchedRun:
    """One rsl_rl PPO run on a MuJoCo Warp batch; ``curve`` rows are (steps, seconds, mean, std) of Gymnasium evaluations."""

    env_id: str
    seed: int
    n_envs: int
    device: str
    threshold: float | None
    curve: list[list[float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0  # training wall time (rsl_rl's collection + learning), evaluation excluded
    eval_seconds: float = 0.0  # evaluation wall time in Gymnasium, kept apart
    checkpoint: str = ""
    resumed_from: int = 0

    @property
    def solved(self) -> bool:
        return bool(self.curve) and self.threshold is not None and self.curve[-1][2] >= self.threshold

    def frame(self):
        import pandas as pd  # noqa: PLC0415

        return pd.DataFrame(self.curve, columns=["steps", "seconds", "mean", "std"])


def _detached_copy(module):
    """A deep copy of ``module`` whose cached non-leaf tensors (e.g. the last action distribution, which autograd
    tensors that cannot be deep-copied) come across detached; parameters and buffers are copied as usual."""
    import torch  # noqa: PLC0415

    memo: dict[int, object] = {}
    seen: set[int] = set()
    stack = [module]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if not obj.is_leaf:
                memo[id(obj)] = obj.detach().clone()
            continue
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
    return copy.deepcopy(module, memo)


def _policy_fn(runner, TensorDict, *, device: str = "cpu") -> Callable:
    """The runner's policy as observation array → mean action, on a *copy* of the actor placed on ``device``.

    rsl_rl 5.5.1's ``get_inference_policy(device)`` is ``get_policy().to(device)``, and ``get_policy()``
    returns the training actor itself: moving it would leave training on the CPU while the batch's
    observations stay on the GPU. A deep copy is moved instead; the training actor is untouched.
    ``device`` is where the copy runs: the CPU, beside Gymnasium's C engine that evaluates it.
    """
    import torch  # noqa: PLC0415

    policy = _detached_copy(runner.alg.get_policy()).to(device).eval()

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = TensorDict({"policy": torch.as_tensor(obs, dtype=torch.float32)[None]}, batch_size=[1])
            return policy(x)[0].numpy().astype(np.float64)  # the mean action: deterministic

    return act


def _weights_finite(runner) -> bool:
    import torch  # noqa: PLC0415

    return all(bool(torch.isfinite(p).all()) for p in runner.alg.get_policy().parameters())


def train(env_id: str, *, out: Path, n_envs: int = 1024, seed: int = 0, max_iterations: int = 200,
          eval_every: int = 10, eval_episodes: int = 5, device: str = "auto", learning_rate: float = 1e-3,
          randomise: bool = False) -> BatchedRun:
    """rsl_rl PPO on ``n_envs`` copies in MuJoCo Warp until Gymnasium's threshold, scored in Gymnasium's environment.

    Every ``eval_every`` iterations (each ``n_envs`` × 16 steps) the policy's mean action plays
    ``eval_episodes`` episodes in Gymnasium (C MuJoCo); training stops at the first evaluation at or
    above the threshold. The runner's whole state is saved atomically at each evaluation with a JSON
    record; calling again with the same ``out`` resumes from it (or returns a finished run as saved).
    ``randomise=True`` trains on randomised bodies, delays and sensor noise (:func:`PendulumBatch`) and
    runs all ``max_iterations``: crossing the line on the nominal body is not what it is for.
    """
    import torch  # noqa: PLC0415

    if env_id not in BATCHED_TASKS:
        raise InputError(f"The batched path has rules for {', '.join(BATCHED_TASKS)} only, not {env_id!r}; "
                         "locomotion at thousands of environments is Isaac Lab's (see Next steps).")
    _, OnPolicyRunner, TensorDict = _rsl()
    device, _ = choose_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"rsl_{env_id}_seed{seed}_n{n_envs}{'_dr' if randomise else ''}"
    checkpoint, record = out / f"{stem}.pt", out / f"{stem}.json"
    threshold = tasks.threshold(env_id)
    run = BatchedRun(env_id, seed, n_envs, device, threshold, checkpoint=str(checkpoint))
    config = ppo_config(learning_rate=learning_rate) | ({"randomise": True} if randomise else {})
    if record.exists() and checkpoint.exists():
        saved = json.loads(record.read_text())
        if saved["config"] != config:
            raise InputError(f"{checkpoint.name} was trained with other settings (learning_rate "
                             f"{saved['config']['algorithm']['learning_rate']}): keep them, or use a new `out` folder.")
        run.curve, run.steps, run.seconds = saved["curve"], saved["steps"], saved["seconds"]
        run.eval_seconds = saved.get("eval_seconds", 0.0)
        run.resumed_from = run.steps
        if (run.solved and not randomise) or saved["iterations"] >= max_iterations:
            return run
    torch.manual_seed(seed)
    env = PendulumBatch(n_envs, device=device, seed=seed, randomise=randomise)
    per_iteration = n_envs * config["num_steps_per_env"]
    with contextlib.redirect_stdout(io.StringIO()):  # the runner prints both networks
        runner = OnPolicyRunner(env, copy.deepcopy(ppo_config(learning_rate=learning_rate)), log_dir=None,
                                device=str(env.device))  # it edits its cfg
    iterations = 0
    if run.resumed_from:
        runner.load(str(checkpoint), map_location=str(env.device))
        iterations = run.steps // per_iteration
    while iterations < max_iterations:
        chunk = min(eval_every, max_iterations - iterations)
        started = time.perf_counter()
        try:
            runner.learn(chunk)
        except Exception as err:  # ValueError: rsl_rl's NaN check; RuntimeError: torch's Normal given a NaN std
            if not isinstance(err, (ValueError, TrainingDivergedError)) and _weights_finite(runner):
                raise
            raise TrainingDivergedError(f"{err} Stopped within iterations {iterations + 1}–{iterations + chunk} (after "
                                        f"{run.steps:,} steps); the last checkpoint is "
                                        f"{checkpoint if checkpoint.exists() else 'none yet'}. Lower learning_rate.") from err
        learned = time.perf_counter()
        run.seconds += learned - started  # training only: SB3's trainer is timed the same way
        iterations += chunk
        run.steps = iterations * per_iteration
        returns = evaluate(_policy_fn(runner, TensorDict), env_id, episodes=eval_episodes, seed=10_000 + seed * 100)
        runner.alg.train_mode()
        run.eval_seconds += time.perf_counter() - learned
        run.curve.append([run.steps, round(run.seconds, 3), float(returns.mean()), float(returns.std())])
        partial = checkpoint.with_name(f".{stem}.partial.pt")
        runner.save(str(partial))
        os.replace(partial, checkpoint)  # a crash mid-save leaves the previous checkpoint whole
        write_json_atomic(record, {"env_id": env_id, "seed": seed, "n_envs": n_envs, "device": device,
                                   "iterations": iterations, "steps": run.steps, "seconds": run.seconds,
                                   "eval_seconds": run.eval_seconds,
                                   "curve": run.curve, "config": config})
        if run.solved and not randomise:
            break
    return run


def load_runner(run: BatchedRun):
    """rsl_rl's ``OnPolicyRunner`` holding the saved state of ``run``, on the CPU (for export or inference)."""
    _, OnPolicyRunner, _ = _rsl()
    env = PendulumBatch(1, device="cpu")
    with contextlib.redirect_stdout(io.StringIO()):
        runner = OnPolicyRunner(env, ppo_config(), log_dir=None, device="cpu")
    runner.load(run.checkpoint, map_location="cpu")
    return runner


def load_policy(run: BatchedRun) -> Callable:
    """The saved policy of ``run`` as observation array → action array (its mean action), on the CPU."""
    return _policy_fn(load_runner(run), _rsl()[2])
