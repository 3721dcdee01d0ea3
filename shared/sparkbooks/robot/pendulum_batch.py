"""Gymnasium's InvertedPendulum-v5 as one MuJoCo Warp batch: an rsl_rl ``VecEnv`` of thousands of copies.

The rules are Gymnasium's v5, written for the batch (observation, reward, termination, reset), with
optional domain randomisation per world; :mod:`sparkbooks.robot.batched` trains rsl_rl's PPO on it.
"""

from __future__ import annotations

from ..exceptions import MissingDependencyError, TrainingDivergedError
from .warp_batch import _Batch, choose_device, task_model

__all__ = ["PendulumBatch"]


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
            self.fields = self.batch.per_world(("body_mass", "body_inertia", "actuator_gear"))
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
