"""Reachy Mini head tracking on one MuJoCo Warp batch: an rsl_rl ``VecEnv``, PPO training that resumes, the policy.

The rules are :mod:`.head_task`'s (the same observation functions the C judge uses); the physics is
:mod:`.warp_batch`'s ``_Batch`` (an NVIDIA GPU, or Warp's CPU device) on Reachy Mini's model with
contacts off (the head–body mesh contacts cost most of a CPU step; the C judge keeps them).
Domain randomisation, per world and redrawn at each reset: the legs' servo stiffness ×U(0.8, 1.2) and
the head's mass and inertia ×U(0.8, 1.2) (MuJoCo Warp model fields given one row per world), and
Gaussian observation noise σ 0.01. :func:`train` runs rsl_rl's PPO (Isaac Lab's runner, the keys of
:func:`.batched.ppo_config`) for a time or iteration budget and saves the whole runner after every
chunk, so a long run is many short calls.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import InputError, TrainingDivergedError
from ..fileio import write_json_atomic
from . import head_task as task
from . import reachy
from .batched import _detached_copy, ppo_config
from .pendulum_batch import _rsl
from .warp_batch import _Batch, choose_device

__all__ = ["HeadBatch", "HeadRun", "config", "load_policy", "load_runner", "train"]


def config(*, learning_rate: float = 1e-3, steps_per_env: int = 24) -> dict:
    """rsl_rl's runner settings for the head: Isaac Lab's keys (:func:`.batched.ppo_config`), ``steps_per_env`` steps
    per iteration, 64×64 networks and observation normalisation (the observation mixes radians, rad/s and actions)."""
    cfg = ppo_config(learning_rate=learning_rate, num_steps_per_env=steps_per_env, hidden=(64, 64))
    cfg["actor"] |= {"obs_normalization": True}
    cfg["critic"] |= {"obs_normalization": True}
    return cfg


def HeadBatch(n_envs: int, *, device: str = "auto", seed: int = 0, randomise: bool = True):  # noqa: N802
    """Reachy Mini head tracking as one batch of ``n_envs`` copies in MuJoCo Warp, for rsl_rl."""
    import torch  # noqa: PLC0415

    VecEnv, _, TensorDict = _rsl()
    device, _ = choose_device(device)
    model = reachy.load_model(contacts=False)
    lay = task.layout(model)

    class _Head(VecEnv):
        max_episode_length = task.EPISODE_STEPS

        def __init__(self):
            self.batch = _Batch(model, n_envs, device, task.DECIMATION)
            self.num_envs, self.num_actions = n_envs, task.N_ACTIONS
            self.device = self.batch.qpos.device
            self.cfg = {"task": "reachy-mini-head", "n_envs": n_envs, "warp_device": device, "randomise": randomise}
            self.generator = torch.Generator(device=self.device).manual_seed(seed)
            self.episode_length_buf = torch.zeros(n_envs, dtype=torch.long, device=self.device)
            tensor = lambda x, **kw: torch.as_tensor(x, device=self.device, **kw)  # noqa: E731
            self.rest = tensor(lay.rest_quat, dtype=torch.float32)
            self.low, self.high = tensor(lay.low, dtype=torch.float32), tensor(lay.high, dtype=torch.float32)
            self.legs, self.dofs = tensor(lay.leg_qpos), tensor(lay.leg_dof)
            self.acts = tensor(lay.leg_actuators)
            self.xquat = self.batch.wp.to_torch(self.batch.d.xquat)
            self.targets = torch.zeros(n_envs, 3, device=self.device)
            self.goals = self.rest.repeat(n_envs, 1)
            self.previous = torch.zeros(n_envs, task.N_ACTIONS, device=self.device)
            self.head = self.rest.repeat(n_envs, 1)  # the head's orientation the last step saw
            self.randomise = randomise
            if randomise:
                self._per_world_fields()
            self._reset(torch.ones(n_envs, dtype=torch.bool, device=self.device))

        def _per_world_fields(self) -> None:
            """Servo gains and the head's mass get one row per world (Warp reads row ``world % rows``)."""
            self.fields = self.batch.per_world(("actuator_gainprm", "actuator_biasprm", "body_mass", "body_inertia"))

        def _uniform(self, count: int, low: float, high: float):
            return low + (high - low) * torch.rand(count, generator=self.generator, device=self.device)

        def _reset(self, mask) -> None:
            self.batch.reset(mask)
            count = int(mask.sum())
            self.episode_length_buf[mask] = 0
            self.previous[mask] = 0.0
            self.head[mask] = self.rest  # reset_data puts qpos0 back: the rest pose
            self.targets[mask] = task.sample_targets(count, self.generator, device=self.device)
            self.goals[mask] = task.target_quat(self.rest, self.targets[mask])
            if self.randomise:  # a new robot for every new episode
                gain, bias = self.fields["actuator_gainprm"], self.fields["actuator_biasprm"]
                stiff = self._uniform(count, 0.8, 1.2)[:, None]  # kp, and the position bias −kp with it
                rows = mask.nonzero()[:, :1]
                gain[0][rows, self.acts, 0] = gain[1][0, self.acts, 0] * stiff
                bias[0][rows, self.acts, 1] = bias[1][0, self.acts, 1] * stiff
                mass, inertia = self.fields["body_mass"], self.fields["body_inertia"]
                scale = self._uniform(count, 0.8, 1.2)
                mass[0][mask, lay.head] = mass[1][0, lay.head] * scale
                inertia[0][mask, lay.head] = inertia[1][0, lay.head] * scale[:, None]

        def _observe(self):
            obs = task.observe(self.head, self.goals, target_rotvec=self.targets, legs=self.batch.qpos[:, self.legs],
                               leg_vel=self.batch.qvel[:, self.dofs], previous=self.previous)
            if self.randomise:
                obs = obs + 0.01 * torch.randn(obs.shape, generator=self.generator, device=self.device)
            return obs

        def get_observations(self):
            return TensorDict({"policy": self._observe()}, batch_size=[self.num_envs])

        def step(self, actions):
            if not torch.isfinite(actions).all():
                raise TrainingDivergedError(f"The policy sent non-finite actions to "
                                            f"{int((~torch.isfinite(actions)).any(1).sum())} of {self.num_envs} copies.")
            actions = actions.clamp(-task.ACTION_CLIP, task.ACTION_CLIP)
            self.batch.ctrl[:, self.acts] = torch.clamp(task.ACTION_SCALE * actions, self.low, self.high)
            self.batch.step()
            self.head = self.xquat[:, lay.head].clone()
            error = task.error_angle(self.head, self.goals)
            change = ((actions - self.previous) ** 2).mean(-1)
            self.previous = actions.clone()
            bad = ~torch.isfinite(self.batch.qpos).all(dim=1)
            rewards = torch.where(bad, torch.full_like(error, -10.0), -error / task.TARGET_RAD - 0.01 * change)
            self.episode_length_buf += 1
            time_outs = self.episode_length_buf >= self.max_episode_length
            dones = bad | time_outs
            if dones.any():
                self._reset(dones)  # the next observation of a finished copy is its new episode's first
            self.extras_error = error
            return self.get_observations(), rewards, dones.long(), {"time_outs": time_outs & ~bad}

    return _Head()


@dataclass
class HeadRun:
    """One rsl_rl run on the head batch: iterations and steps done, training seconds summed over calls, the checkpoint."""

    seed: int
    n_envs: int
    device: str
    randomise: bool
    iterations: int = 0
    steps: int = 0
    seconds: float = 0.0
    reward: list[float] | None = None  # mean reward per step over each chunk's last iteration
    checkpoint: str = ""


def _runner(env, cfg: dict, device: str):
    _, OnPolicyRunner, _ = _rsl()
    with contextlib.redirect_stdout(io.StringIO()):  # the runner prints both networks
        return OnPolicyRunner(env, copy.deepcopy(cfg), log_dir=None, device=device)  # it edits its cfg


def train(*, out: Path, seed: int = 0, n_envs: int = 128, iterations: int = 60, max_seconds: float | None = None,
          budget_s: float | None = None, chunk: int = 5, device: str = "auto", learning_rate: float = 1e-3,
          steps_per_env: int = 24, randomise: bool = True) -> HeadRun:
    """rsl_rl PPO on ``n_envs`` Warp copies of the head task, up to ``iterations`` in all, saved every ``chunk``.

    Calling again with the same ``out`` and ``seed`` resumes (weights, optimiser, normaliser, count);
    ``max_seconds`` ends this call after the first chunk that passes it (the run stays resumable);
    ``budget_s`` ends the run once its training time, summed over calls, reaches it (a "10-minute run").
    """
    import torch  # noqa: PLC0415

    device, _ = choose_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"head_seed{seed}_n{n_envs}{'_dr' if randomise else ''}"
    checkpoint, record = out / f"{stem}.pt", out / f"{stem}.json"
    cfg = config(learning_rate=learning_rate, steps_per_env=steps_per_env)
    run = HeadRun(seed, n_envs, device, randomise, reward=[], checkpoint=str(checkpoint))
    if record.exists() and checkpoint.exists():
        saved = json.loads(record.read_text())
        if saved["config"] != json.loads(json.dumps(cfg)):
            raise InputError(f"{checkpoint.name} was trained with other settings: keep them, or use a new `out` folder.")
        run.iterations, run.steps, run.seconds, run.reward = (saved[k] for k in ("iterations", "steps", "seconds", "reward"))
        if run.iterations >= iterations or (budget_s is not None and run.seconds >= budget_s):
            return run
    torch.manual_seed(seed)
    env = HeadBatch(n_envs, device=device, seed=seed + 1000 * run.iterations, randomise=randomise)
    runner = _runner(env, cfg, str(env.device))
    if run.iterations:
        runner.load(str(checkpoint), map_location=str(env.device))
    started_call = time.perf_counter()
    while run.iterations < iterations and (budget_s is None or run.seconds < budget_s):
        step = min(chunk, iterations - run.iterations)
        started = time.perf_counter()
        try:
            runner.learn(step)
        except ValueError as err:  # rsl_rl's NaN check
            raise TrainingDivergedError(f"{err} Lower learning_rate; the last checkpoint is {checkpoint}.") from err
        run.seconds += time.perf_counter() - started
        run.iterations += step
        run.steps = run.iterations * n_envs * cfg["num_steps_per_env"]
        run.reward.append(float(runner.alg.storage.rewards.mean()) if runner.alg.storage is not None else float("nan"))
        partial = checkpoint.with_name(f".{stem}.partial.pt")
        runner.save(str(partial))
        os.replace(partial, checkpoint)  # a crash mid-save leaves the previous checkpoint whole
        write_json_atomic(record, {"seed": seed, "n_envs": n_envs, "device": device, "randomise": randomise,
                                   "iterations": run.iterations, "steps": run.steps, "seconds": run.seconds,
                                   "reward": run.reward, "config": cfg})
        if max_seconds is not None and time.perf_counter() - started_call > max_seconds:
            break
    return run


def load_runner(run: HeadRun | None = None, *, seed: int = 0):
    """rsl_rl's ``OnPolicyRunner`` holding ``run``'s saved state (``None``: the untrained one rsl_rl builds for ``seed``),
    on the CPU, for export or inference. Loading needs no simulator: a stand-in gives the runner its shapes."""
    import torch  # noqa: PLC0415

    VecEnv, _, TensorDict = _rsl()

    class _Shapes(VecEnv):  # what the runner reads to build its networks
        num_envs, num_actions, max_episode_length, device, cfg = 1, task.N_ACTIONS, task.EPISODE_STEPS, "cpu", {}
        episode_length_buf = torch.zeros(1, dtype=torch.long)

        def get_observations(self):
            return TensorDict({"policy": torch.zeros(1, task.N_OBS)}, batch_size=[1])

        def step(self, actions):
            raise NotImplementedError("a stand-in for the policy's shapes: it does not simulate")

    torch.manual_seed(seed if run is None else run.seed)  # the seed train() builds its first weights with
    runner = _runner(_Shapes(), config(), "cpu")
    if run is not None:
        runner.load(run.checkpoint, map_location="cpu")
    return runner


def load_policy(run: HeadRun | None = None, *, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A saved run's policy (or, with ``run=None``, the untrained policy rsl_rl builds for ``seed``) as a batch
    policy for :func:`.head_task.judge`: observations → mean actions, on the CPU."""
    import torch  # noqa: PLC0415

    TensorDict = _rsl()[2]
    actor = _detached_copy(load_runner(run, seed=seed).alg.get_policy()).eval()

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = TensorDict({"policy": torch.as_tensor(obs, dtype=torch.float32)}, batch_size=[len(obs)])
            return actor(x).numpy().astype(np.float64)

    return act
