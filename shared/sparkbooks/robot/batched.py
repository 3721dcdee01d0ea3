"""Thousands of environments in one batch: MuJoCo Warp steps every copy at once, rsl_rl's PPO learns from them.

MuJoCo Warp (``mujoco_warp``) runs MuJoCo's pipeline as NVIDIA Warp kernels over ``nworld`` copies of
one model: on an NVIDIA GPU (one CUDA graph per step), or on Warp's CPU device — the same code and
the same single-precision numbers, only slower. rsl_rl is the PPO that Isaac Lab trains with; it
takes exactly this kind of batched torch environment, and :func:`ppo_config` holds the keys Isaac
Lab's ``RslRlOnPolicyRunnerCfg`` passes (its Cartpole values), so a configuration found here is one
Isaac Lab reads as it is — the task, its rewards and its observation scales are not.
The answer key for both is MuJoCo's own C engine: :func:`conformance` steps identical states once in
both engines on several worlds with different controls, and a policy trained on the batch is scored
in Gymnasium's environment, not in the batch it learned from.

Timing: ``BatchedRun.seconds`` is training alone (rsl_rl's collection + learning), evaluation kept
apart in ``eval_seconds`` — the same split :func:`sparkbooks.robot.train.train` makes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..exceptions import InputError, MissingDependencyError, TrainingDivergedError
from ..fileio import write_json_atomic
from . import tasks

__all__ = ["BATCHED_TASKS", "BatchedRun", "PendulumBatch", "WarpDevice", "agreement", "choose_device", "conformance",
           "evaluate", "load_policy", "load_runner", "ppo_config", "simulation_rate", "task_model", "throughput", "train"]

#: Tasks whose rules (observation, reward, termination, reset) are written for the batch; any MuJoCo task simulates.
BATCHED_TASKS = ("InvertedPendulum-v5",)


def _libs():
    try:
        import mujoco_warp  # noqa: PLC0415
        import warp  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("MuJoCo Warp is not installed: `pip install -e '.[robot]'` "
                                     "(mujoco-warp, warp-lang; wheels for Linux x86-64 and aarch64).") from None
    warp.config.quiet = True
    warp.config.log_level = warp.LOG_WARNING  # one line per compiled kernel otherwise
    return warp, mujoco_warp


class WarpDevice(NamedTuple):
    """Where the batch runs (``"cpu"`` or ``"cuda:N"``) and why."""

    name: str
    why: str


def choose_device(device: str = "auto") -> WarpDevice:
    """Warp's device for the batch, and why, from the device policy (:func:`sparkbooks.devices.warp_device`):
    an NVIDIA GPU where Warp's CUDA works and ``SPARKBOOKS_ACCELERATOR`` is not ``cpu``, else Warp's CPU device."""
    from .. import devices  # noqa: PLC0415

    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {device!r}.")
    if device.startswith("cuda") and not devices.use_gpu("warp"):
        raise InputError(f"device={device!r}, but Warp sees no CUDA device on this machine "
                         f"({devices.probe().reason('warp')}): use 'auto' or 'cpu'.")
    if device == "auto":
        chosen = devices.warp_device()
        if chosen != "cpu":
            return WarpDevice(chosen, f"NVIDIA GPU: {devices.probe().gpu_name}")
        return WarpDevice("cpu", f"Warp's CPU device, the same kernels compiled for the CPU "
                                 f"({devices.probe().reason('warp')})")
    return WarpDevice(device, "as asked")


def task_model(env_id: str):
    """The MuJoCo model Gymnasium's ``env_id`` simulates (its own MJCF file), and its frame skip."""
    gym = tasks._gym()
    tasks.check_task(env_id)
    env = gym.make(env_id)
    try:
        return env.unwrapped.model, int(env.unwrapped.frame_skip)
    finally:
        env.close()


class _Batch:
    """``n`` copies of one MuJoCo model on a Warp device; one :meth:`step` is ``frame_skip`` physics steps."""

    def __init__(self, model, n: int, device: str, frame_skip: int):
        import mujoco  # noqa: PLC0415

        self.wp, self.mjw = _libs()
        if n < 1:
            raise InputError(f"n_envs must be at least 1, not {n}.")
        self.model, self.n, self.device, self.frame_skip = model, n, device, frame_skip
        with self.wp.ScopedDevice(device):
            self.m = self.mjw.put_model(model)
            self.d = self.mjw.put_data(model, mujoco.MjData(model), nworld=n)
        self.qpos, self.qvel, self.ctrl = (self.wp.to_torch(a) for a in (self.d.qpos, self.d.qvel, self.d.ctrl))
        self._graph = None
        self._side = None
        if device.startswith("cuda"):  # Warp launches on its own stream, torch writes controls on its current one
            import torch  # noqa: PLC0415

            self._side = torch.cuda.ExternalStream(self.wp.get_stream(device).cuda_stream, device=self.qpos.device)

    @contextlib.contextmanager
    def _ordered(self):
        """Warp's work after torch's writes, and torch's reads after Warp's work (a no-op on the CPU)."""
        if self._side is None:
            yield
            return
        import torch  # noqa: PLC0415

        current = torch.cuda.current_stream(self.qpos.device)
        self._side.wait_stream(current)
        yield
        current.wait_stream(self._side)

    def _physics(self) -> None:
        for _ in range(self.frame_skip):
            self.mjw.step(self.m, self.d)

    def step(self) -> None:
        with self.wp.ScopedDevice(self.device), self._ordered():
            if self._graph is not None:
                self.wp.capture_launch(self._graph)
            elif self.device.startswith("cuda"):
                self._physics()  # compiles every kernel before the capture
                with self.wp.ScopedCapture() as capture:
                    self._physics()
                self._graph = capture.graph  # one launch replays all frame_skip steps
            else:
                self._physics()

    def reset(self, mask) -> None:
        """Back to the model's defaults for the worlds where ``mask`` (a bool torch tensor) is set."""
        with self.wp.ScopedDevice(self.device), self._ordered():
            self.mjw.reset_data(self.m, self.d, reset=self.wp.from_torch(mask.contiguous()))

    def synchronize(self) -> None:
        self.wp.synchronize_device(self.device)


def simulation_rate(env_id: str, n_envs: int, *, steps: int = 100, device: str = "auto", seed: int = 0) -> dict:
    """Environment steps per second of ``n_envs`` copies stepped together in MuJoCo Warp with random controls.

    One environment step is the task's ``frame_skip`` physics steps, as in :func:`tasks.simulation_rate`.
    No resets (a fallen copy costs the same to simulate); one warm-up step compiles the kernels and is not timed.
    """
    import torch  # noqa: PLC0415

    device, _ = choose_device(device)
    model, frame_skip = task_model(env_id)
    batch = _Batch(model, n_envs, device, frame_skip)
    low, high = (torch.as_tensor(model.actuator_ctrlrange[:, i], dtype=torch.float32, device=batch.ctrl.device)
                 for i in (0, 1))
    generator = torch.Generator(device=batch.ctrl.device).manual_seed(seed)
    controls = [low + (high - low) * torch.rand(batch.ctrl.shape, generator=generator, device=batch.ctrl.device)
                for _ in range(8)]  # drawn before timing: the rate is the physics'
    batch.step()
    batch.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        batch.ctrl.copy_(controls[i % len(controls)])
        batch.step()
    batch.synchronize()
    seconds = time.perf_counter() - start
    return {"n_envs": n_envs, "env_steps": steps * n_envs, "seconds": seconds, "steps_per_s": steps * n_envs / seconds,
            "device": device}


def throughput(env_id: str, n_envs: Sequence[int] = (1, 64, 1024), *, steps: int = 100, device: str = "auto",
               seed: int = 0):
    """:func:`simulation_rate` for each ``n_envs``, as a table."""
    import pandas as pd  # noqa: PLC0415

    return pd.DataFrame([simulation_rate(env_id, n, steps=steps, device=device, seed=seed)
                         for n in n_envs]).set_index("n_envs")


def agreement(env_id: str, *, steps: int = 200, seed: int = 0, device: str = "auto") -> dict:
    """MuJoCo Warp (float32) against MuJoCo's C engine (float64): one world, one start, one control sequence.

    A wiring check only: one world cannot show a batch that mixes worlds up, and over a long run a
    chaotic body (InvertedDoublePendulum) diverges between any two engines. :func:`conformance` is the check.

    Returns the largest difference in joint positions over the run and at its end, and how far the
    joints moved (the scale the difference is read against).
    """
    import mujoco  # noqa: PLC0415

    device, _ = choose_device(device)
    model, frame_skip = task_model(env_id)
    rng = np.random.default_rng(seed)
    data = mujoco.MjData(model)
    data.qpos[:] = model.qpos0 + rng.uniform(-0.01, 0.01, model.nq)
    data.qvel[:] = rng.uniform(-0.01, 0.01, model.nv)
    batch = _Batch(model, 1, device, frame_skip)
    batch.qpos.copy_(batch.qpos.new_tensor(data.qpos[None]))
    batch.qvel.copy_(batch.qvel.new_tensor(data.qvel[None]))
    low, high = model.actuator_ctrlrange.T
    diffs, start = [], data.qpos.copy()
    for _ in range(steps):
        ctrl = rng.uniform(low, high)
        data.ctrl[:] = ctrl
        mujoco.mj_step(model, data, nstep=frame_skip)
        batch.ctrl.copy_(batch.ctrl.new_tensor(ctrl[None]))
        batch.step()
        diffs.append(float(np.abs(batch.qpos.cpu().numpy()[0] - data.qpos).max()))
    return {"steps": steps, "max_qpos_diff": max(diffs), "final_qpos_diff": diffs[-1],
            "qpos_travel": float(np.abs(data.qpos - start).max()), "device": device}


def conformance(env_id: str, *, worlds: int = 8, seed: int = 0, device: str = "auto", angle: float = 0.2,
                atol: float = 1e-5) -> dict:
    """One environment step from identical states on ``worlds`` worlds with different controls: Warp against C.

    Each world gets its own state (joint positions within ``angle`` of ``qpos0`` — inside the task's
    live region, away from joint limits — and velocities in ±0.5) and its own control, drawn from the
    control range. The states are rounded to float32 first, so both engines start from the *same*
    numbers; C MuJoCo steps each world alone (``frame_skip`` × ``mj_step``, float64), the batch steps
    all of them at once. One step keeps chaos out of it (a long trajectory of a chaotic body diverges
    in any two engines), and different controls per world catch a batch that mixes worlds up (a
    control or state read from the wrong world), which a one-world check cannot see.

    Returns the largest |Δqpos| and |Δqvel| over all worlds, per-world maxima, and ``ok`` (both ≤ ``atol``).
    """
    import mujoco  # noqa: PLC0415

    if worlds < 2:
        raise InputError(f"worlds must be at least 2 (a batch of one cannot mix worlds up), not {worlds}.")
    device, _ = choose_device(device)
    model, frame_skip = task_model(env_id)
    rng = np.random.default_rng(seed)
    qpos = (model.qpos0 + rng.uniform(-angle, angle, (worlds, model.nq))).astype(np.float32).astype(np.float64)
    qvel = rng.uniform(-0.5, 0.5, (worlds, model.nv)).astype(np.float32).astype(np.float64)
    low, high = model.actuator_ctrlrange.T
    ctrl = rng.uniform(low, high, (worlds, model.nu)).astype(np.float32).astype(np.float64)
    want_q, want_v = np.empty_like(qpos), np.empty_like(qvel)
    data = mujoco.MjData(model)
    for w in range(worlds):
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:], data.ctrl[:] = qpos[w], qvel[w], ctrl[w]
        mujoco.mj_step(model, data, nstep=frame_skip)
        want_q[w], want_v[w] = data.qpos, data.qvel
    batch = _Batch(model, worlds, device, frame_skip)
    batch.qpos.copy_(batch.qpos.new_tensor(qpos))
    batch.qvel.copy_(batch.qvel.new_tensor(qvel))
    batch.ctrl.copy_(batch.ctrl.new_tensor(ctrl))
    batch.step()
    batch.synchronize()
    dq = np.abs(batch.qpos.cpu().numpy() - want_q).max(axis=1)
    dv = np.abs(batch.qvel.cpu().numpy() - want_v).max(axis=1)
    return {"worlds": worlds, "max_qpos_diff": float(dq.max()), "max_qvel_diff": float(dv.max()),
            "per_world": np.maximum(dq, dv).tolist(), "ok": bool(max(dq.max(), dv.max()) <= atol), "atol": atol,
            "qvel_scale": float(np.abs(want_v).max()), "device": device}


def _rsl():
    try:
        from rsl_rl.env import VecEnv  # noqa: PLC0415
        from rsl_rl.runners import OnPolicyRunner  # noqa: PLC0415
        from tensordict import TensorDict  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("rsl_rl is not installed: `pip install -e '.[robot]'` (rsl-rl-lib).") from None
    return VecEnv, OnPolicyRunner, TensorDict


def PendulumBatch(n_envs: int, *, device: str = "auto", seed: int = 0, randomise: bool = False):  # noqa: N802
    """Gymnasium's InvertedPendulum-v5 as one batch of ``n_envs`` copies in MuJoCo Warp, for rsl_rl.

    The rules are Gymnasium's v5, copied from its source: observation ``[qpos, qvel]``; reward 1 while
    the pole is within 0.2 rad of upright (and every value finite), the episode ending otherwise;
    1,000 steps at most; start ``qpos0`` plus uniform noise of ±0.01 on positions and velocities.

    ``randomise=True`` is domain randomisation, per world and redrawn at every reset, with the ranges
    :mod:`sparkbooks.robot.robustness` scores on: pole mass (and inertia) ×U(0.5, 2) and actuator gear
    ×U(0.7, 1.3) — MuJoCo Warp model fields given one row per world — 0–2 control steps of action delay,
    and Gaussian observation noise σ 0.01 on what the policy sees (termination reads the true state).
    """
    import torch  # noqa: PLC0415

    VecEnv, _, TensorDict = _rsl()
    device, _ = choose_device(device)
    model, frame_skip = task_model("InvertedPendulum-v5")

    class _Pendulum(VecEnv):
        max_episode_length = 1000

        def __init__(self):
            self.batch = _Batch(model, n_envs, device, frame_skip)
            self.num_envs, self.num_actions = n_envs, model.nu
            self.device = self.batch.qpos.device
            self.cfg = {"env_id": "InvertedPendulum-v5", "n_envs": n_envs, "warp_device": device}
            self.generator = torch.Generator(device=self.device).manual_seed(seed)
            self.episode_length_buf = torch.zeros(n_envs, dtype=torch.long, device=self.device)
            self.low, self.high = (torch.as_tensor(model.actuator_ctrlrange[:, i], dtype=torch.float32,
                                                   device=self.device) for i in (0, 1))
            self.qpos0 = torch.as_tensor(model.qpos0, dtype=torch.float32, device=self.device)
            self.randomise = randomise
            self.cfg["randomise"] = randomise
            self.delay = torch.zeros(n_envs, dtype=torch.long, device=self.device)
            self.pending = torch.zeros(n_envs, 3, model.nu, device=self.device)  # actions waiting 0, 1, 2 steps
            if randomise:
                self._per_world_fields()
            self._reset(torch.ones(n_envs, dtype=torch.bool, device=self.device))

        def _per_world_fields(self) -> None:
            """Give pole mass, inertia and gear one row per world (Warp reads row ``world % rows``)."""
            wp, m = self.batch.wp, self.batch.m
            self.fields = {}
            for name in ("body_mass", "body_inertia", "actuator_gear"):
                field = getattr(m, name)
                rows = wp.to_torch(field).repeat(n_envs, *([1] * (wp.to_torch(field).dim() - 1))).contiguous()
                setattr(m, name, wp.from_torch(rows, dtype=field.dtype))
                self.fields[name] = (rows, rows[:1].clone())  # (the live per-world rows, the nominal row)
            self.pole = model.body("pole").id

        def _uniform(self, count: int, low: float, high: float):
            return low + (high - low) * torch.rand(count, generator=self.generator, device=self.device)

        def _noise(self, count: int, width: int):
            return (torch.rand(count, width, generator=self.generator, device=self.device) * 2 - 1) * 0.01

        def _reset(self, mask) -> None:
            self.batch.reset(mask)
            count = int(mask.sum())
            self.batch.qpos[mask] = self.qpos0 + self._noise(count, self.batch.qpos.shape[1])
            self.batch.qvel[mask] = self._noise(count, self.batch.qvel.shape[1])
            self.episode_length_buf[mask] = 0
            self.pending[mask] = 0.0
            if self.randomise:  # a new body for every new episode
                mass, inertia, gear = (self.fields[k] for k in ("body_mass", "body_inertia", "actuator_gear"))
                scale = self._uniform(count, 0.5, 2.0)
                mass[0][mask, self.pole] = mass[1][0, self.pole] * scale
                inertia[0][mask, self.pole] = inertia[1][0, self.pole] * scale[:, None]
                gear[0][mask, :, 0] = gear[1][0, :, 0] * self._uniform(count, 0.7, 1.3)[:, None]
                self.delay[mask] = torch.randint(0, 3, (count,), generator=self.generator, device=self.device)

        def _seen(self, obs):
            """What the policy observes: the state, plus sensor noise when randomised."""
            if not self.randomise:
                return obs.clone()
            return obs + 0.01 * torch.randn(obs.shape, generator=self.generator, device=self.device)

        def get_observations(self):
            obs = self._seen(torch.cat([self.batch.qpos, self.batch.qvel], dim=1))
            return TensorDict({"policy": obs}, batch_size=[self.num_envs])

        def step(self, actions):
            if not torch.isfinite(actions).all():  # clamped, a NaN action would become NaN physics and silent resets
                raise TrainingDivergedError(f"The policy sent non-finite actions to {int((~torch.isfinite(actions)).any(1).sum())} "
                                            f"of {self.num_envs} copies.")
            self.pending = torch.roll(self.pending, 1, dims=1)
            self.pending[:, 0] = torch.clamp(actions, self.low, self.high)  # MuJoCo clamps to ctrlrange too
            # the action sent `delay` steps ago reaches the motor now (zeros until then); delay 0 without randomisation
            self.batch.ctrl.copy_(self.pending[torch.arange(self.num_envs, device=self.device), self.delay])
            self.batch.step()
            obs = torch.cat([self.batch.qpos, self.batch.qvel], dim=1)
            terminated = ~torch.isfinite(obs).all(dim=1) | (obs[:, 1].abs() > 0.2)
            rewards = (~terminated).float()
            self.episode_length_buf += 1
            time_outs = self.episode_length_buf >= self.max_episode_length
            dones = terminated | time_outs
            observations = TensorDict({"policy": self._seen(obs)}, batch_size=[self.num_envs])
            if dones.any():
                self._reset(dones)  # the next observation of a finished copy is its new episode's first
                observations["policy"][dones] = self._seen(torch.cat([self.batch.qpos, self.batch.qvel], dim=1))[dones]
            return observations, rewards, dones.long(), {"time_outs": time_outs}

    return _Pendulum()


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


def _policy_fn(runner, TensorDict) -> Callable:
    """The runner's policy as observation array → mean action, on a CPU *copy* of the actor.

    rsl_rl 5.5.1's ``get_inference_policy(device)`` is ``get_policy().to(device)``, and ``get_policy()``
    returns the training actor itself: moving it would leave training on the CPU while the batch's
    observations stay on the GPU. A deep copy is moved instead; the training actor is untouched.
    """
    import torch  # noqa: PLC0415

    policy = _detached_copy(runner.alg.get_policy()).to("cpu").eval()

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
