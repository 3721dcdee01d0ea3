"""Reachy Mini head-orientation tracking: the task's rules, and its judge in C MuJoCo.

Each episode draws a target orientation for the head — a rotation of the rest pose by a vector whose
roll, pitch and yaw are each uniform in ±``TARGET_RAD`` (head frame) — and the six Stewart legs must
turn the head there and hold it. The body's yaw and the antennas stay at zero.

- **Control**: 100 Hz (``DECIMATION`` = 5 physics steps of 2 ms), ``EPISODE_STEPS`` = 50 (0.5 s).
- **Action** (6, clipped to ±``ACTION_CLIP``): leg position targets, ``ACTION_SCALE`` × action rad from
  the rest pose, clipped to each servo's range (the MJCF's ``ctrlrange``).
- **Observation** (24, :func:`observe`): the orientation error as a rotation vector in the head frame
  and the target's rotation vector (both ÷ ``TARGET_RAD``), the legs' angles, their velocities × 0.1,
  and the previous action.
- **Reward**: −error angle ÷ ``TARGET_RAD`` − 0.01 × mean squared action change (no jitter).
- **Score** (:func:`judge`): the error angle averaged over an episode's last ``SCORE_STEPS`` control
  steps (the last 0.1 s), in radians — measured in C MuJoCo, double precision, contacts on as shipped.

One set of functions (torch, any device) computes the observation for the MuJoCo Warp batch
(:mod:`.head_batch`) and the C judge, so the policy sees the same numbers in both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import SourceError
from . import reachy

__all__ = ["ACTION_CLIP", "ACTION_SCALE", "ConvergedIK", "DECIMATION", "EPISODE_STEPS", "Layout", "MISMATCH",
           "N_ACTIONS", "N_OBS", "RESULT", "SCORE_STEPS", "TARGET_RAD", "TunedIK", "batch_policy", "committed",
           "error_angle", "judge", "layout", "linear_ik", "mismatched", "observe", "quat_mul", "quat_to_rotvec",
           "rest_policy", "rotvec_to_quat", "sample_targets", "target_quat", "tune_converged_ik"]

DECIMATION = 5
EPISODE_STEPS = 50
SCORE_STEPS = 10
TARGET_RAD = 0.25
ACTION_SCALE = 0.5
ACTION_CLIP = 3.0  # actions are clipped to ±3 (the previous action the policy sees, too)
N_OBS, N_ACTIONS = 24, 6
#: The committed record of ``benchmarks/robot_reachy_head.py`` (repository root / benchmarks / results).
RESULT = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "robot_reachy_head.json"


def quat_mul(a, b):
    """Hamilton product of MuJoCo quaternions (w, x, y, z), batched over leading dimensions (torch)."""
    import torch  # noqa: PLC0415

    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def quat_to_rotvec(q):
    """The rotation vector (axis × angle, angle in [0, π]) of unit quaternions."""
    import torch  # noqa: PLC0415

    q = torch.where(q[..., :1] < 0, -q, q)  # q and −q are one rotation: take the short way
    norm = q[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(norm, q[..., :1])
    scale = torch.where(norm > 1e-7, angle / norm.clamp_min(1e-12), 2 / q[..., :1].clamp_min(1e-12))
    return q[..., 1:] * scale


def rotvec_to_quat(r):
    """Unit quaternions of rotation vectors."""
    import torch  # noqa: PLC0415

    angle = r.norm(dim=-1, keepdim=True)
    half = angle / 2
    scale = torch.where(angle > 1e-7, torch.sin(half) / angle.clamp_min(1e-12), 0.5 - angle ** 2 / 48)
    return torch.cat([torch.cos(half), r * scale], -1)


def error_angle(head, target):
    """Angle (rad) between the head's orientation and the target, both unit quaternions."""
    import torch  # noqa: PLC0415

    dot = (head * target).sum(-1).abs().clamp(max=1.0)
    return 2 * torch.acos(dot)


def target_quat(rest, rotvec):
    """The target orientation: the rest orientation turned by ``rotvec`` in the head's own frame."""
    return quat_mul(rest.expand(*rotvec.shape[:-1], 4), rotvec_to_quat(rotvec))


def sample_targets(count: int, generator, *, device=None):
    """``count`` target rotation vectors, roll, pitch and yaw each uniform in ±``TARGET_RAD``."""
    import torch  # noqa: PLC0415

    return (torch.rand(count, 3, generator=generator, device=device) * 2 - 1) * TARGET_RAD


def observe(head, target, *, target_rotvec, legs, leg_vel, previous):
    """The policy's observation (float32, ``N_OBS`` wide) from the head's and the target's quaternions, the
    target's rotation vector, the legs' angles and velocities, and the previous action."""
    import torch  # noqa: PLC0415

    error = quat_to_rotvec(quat_mul(head * torch.tensor([1.0, -1, -1, -1], dtype=head.dtype, device=head.device), target))
    return torch.cat([error / TARGET_RAD, target_rotvec / TARGET_RAD, legs, 0.1 * leg_vel, previous], -1).float()


@dataclass(frozen=True)
class Layout:
    """Where the task's quantities live in the model: the head body, the legs' qpos/qvel/actuator indices."""

    head: int
    leg_qpos: tuple[int, ...]
    leg_dof: tuple[int, ...]
    leg_actuators: tuple[int, ...]
    rest_quat: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


def layout(model) -> Layout:
    """The :class:`Layout` of a Reachy Mini model (and its rest orientation, from ``qpos0``)."""
    import mujoco  # noqa: PLC0415

    joints = [model.joint(n).id for n in reachy.STEWART]
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    head = model.body(reachy.HEAD_BODY).id
    actuators = tuple(model.actuator(n).id for n in reachy.STEWART)
    return Layout(head, tuple(int(model.jnt_qposadr[j]) for j in joints), tuple(int(model.jnt_dofadr[j]) for j in joints),
                  actuators, tuple(float(x) for x in data.xquat[head]),
                  tuple(float(model.actuator_ctrlrange[a, 0]) for a in actuators),
                  tuple(float(model.actuator_ctrlrange[a, 1]) for a in actuators))


def rest_policy(obs: np.ndarray) -> np.ndarray:
    """The trivial baseline: hold the rest pose (every leg at zero), whatever the target."""
    return np.zeros((len(obs), N_ACTIONS))


def judge(policy: Callable[[np.ndarray], np.ndarray], *, episodes: int = 32, seed: int = 90_000, model=None,
          return_frames: bool = False, watch: Callable[[list], None] | None = None):
    """Each episode's score (rad, the mean error angle over its last ``SCORE_STEPS`` control steps) in C MuJoCo.

    ``policy`` maps a batch of observations (float32, episodes × ``N_OBS``) to actions (episodes ×
    ``N_ACTIONS``): the episodes run side by side, one ``MjData`` each. Targets come from ``seed`` (every
    policy judged with one seed meets the same targets). ``model`` defaults to the shipped model,
    contacts on. ``return_frames=True`` also returns the head's error per control step (episodes × steps);
    ``watch`` is called with every episode's ``MjData`` after each control step (a video records them).
    """
    import mujoco  # noqa: PLC0415
    import torch  # noqa: PLC0415

    model = model if model is not None else reachy.load_model()
    lay = layout(model)
    worlds = [mujoco.MjData(model) for _ in range(episodes)]
    for data in worlds:
        mujoco.mj_forward(model, data)
    targets = sample_targets(episodes, torch.Generator().manual_seed(seed)).double()
    goals = target_quat(torch.tensor(lay.rest_quat, dtype=torch.float64), targets)
    low, high = np.array(lay.low), np.array(lay.high)
    qpos, dofs, acts = list(lay.leg_qpos), list(lay.leg_dof), list(lay.leg_actuators)
    frames = np.empty((episodes, EPISODE_STEPS))
    previous = np.zeros((episodes, N_ACTIONS))

    def state(name: str, index):
        return torch.as_tensor(np.stack([getattr(d, name)[index] for d in worlds]))

    for t in range(EPISODE_STEPS):
        obs = observe(state("xquat", lay.head), goals, target_rotvec=targets, legs=state("qpos", qpos),
                      leg_vel=state("qvel", dofs), previous=torch.as_tensor(previous)).numpy()
        actions = np.clip(np.asarray(policy(obs), dtype=float).reshape(episodes, N_ACTIONS), -ACTION_CLIP, ACTION_CLIP)
        for data, action in zip(worlds, actions):
            data.ctrl[acts] = np.clip(ACTION_SCALE * action, low, high)
            for _ in range(DECIMATION):
                mujoco.mj_step(model, data)
        previous = actions
        if watch is not None:
            watch(worlds)
        frames[:, t] = error_angle(state("xquat", lay.head), goals).numpy()
    scores = frames[:, -SCORE_STEPS:].mean(axis=1)
    return (scores, frames) if return_frames else scores


def _ik_gains(model=None, *, eps: float = 0.05, settle: int = 250) -> np.ndarray:
    """Action per rad of head rotation (6 × 3): the pseudo-inverse of the rest pose's 3 × 6 Jacobian.

    Each leg is commanded ±``eps`` rad in turn and the model settles (``settle`` physics steps, contacts
    as in ``model``); the head's rotation per leg angle gives the Jacobian, its pseudo-inverse the six leg
    angles of least norm for a wanted rotation.
    """
    import mujoco  # noqa: PLC0415
    import torch  # noqa: PLC0415

    model = model if model is not None else reachy.load_model()
    lay = layout(model)
    rest = torch.tensor(lay.rest_quat, dtype=torch.float64)
    data, jacobian = mujoco.MjData(model), np.zeros((3, N_ACTIONS))
    for leg in range(N_ACTIONS):
        for sign in (1.0, -1.0):
            mujoco.mj_resetData(model, data)
            data.ctrl[lay.leg_actuators[leg]] = sign * eps
            for _ in range(settle):
                mujoco.mj_step(model, data)
            conj = rest * torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)
            turned = quat_mul(conj, torch.as_tensor(data.xquat[lay.head]))  # in the head's rest frame
            jacobian[:, leg] += sign * quat_to_rotvec(turned).numpy() / (2 * eps)
    return np.linalg.pinv(jacobian) / ACTION_SCALE  # rotation vector → action


def linear_ik(model=None, *, eps: float = 0.05, settle: int = 250) -> Callable[[np.ndarray], np.ndarray]:
    """The classical baseline: inverse kinematics linearised at rest, from MuJoCo's own model — no learning.

    Feed-forward (:func:`_ik_gains` applied to the target): it reads only the target from the
    observation, as a position-target controller does.
    """
    gains = _ik_gains(model, eps=eps, settle=settle)

    def act(obs: np.ndarray) -> np.ndarray:
        return (np.asarray(obs)[:, 3:6] * TARGET_RAD) @ gains.T  # the observation's target, ÷ TARGET_RAD

    return act


class ConvergedIK:
    """The classical controller a practitioner tries first: inverse kinematics solved to convergence on the model,
    commanded with lead — no learning.

    For each target, Newton's method on the settled pose: start from :func:`_ik_gains` × target, settle the
    legs there (``settle`` physics steps), map the remaining rotation back through the same gains, repeat
    ``iterations`` times (a Stewart platform's IK is the easy direction: the wheel ships an analytical solver).
    The command adds lead, ``lead`` × (solution − the legs' present angle), so the servos close the gap
    faster than their own stiffness would. Solutions are cached per target; it keeps no other state.
    """

    def __init__(self, model=None, *, lead: float = 0.5, iterations: int = 6, settle: int = 400) -> None:
        import mujoco  # noqa: PLC0415

        self.model = model if model is not None else reachy.load_model()
        self.lay, self.gains, self.lead = layout(self.model), _ik_gains(self.model), float(lead)
        self.iterations, self.settle, self.data = iterations, settle, mujoco.MjData(self.model)
        self._solved: dict[tuple[float, ...], np.ndarray] = {}

    def with_lead(self, lead: float) -> ConvergedIK:
        """The same solver (and its cache) with another lead gain."""
        other = object.__new__(ConvergedIK)
        other.__dict__ |= self.__dict__ | {"lead": float(lead)}
        return other

    def _settled_rotation(self, action: np.ndarray):  # -> torch.Tensor: the head's orientation, settled
        import mujoco  # noqa: PLC0415
        import torch  # noqa: PLC0415

        model, data, lay = self.model, self.data, self.lay
        mujoco.mj_resetData(model, data)
        data.ctrl[list(lay.leg_actuators)] = np.clip(ACTION_SCALE * action, lay.low, lay.high)
        for _ in range(self.settle):
            mujoco.mj_step(model, data)
        return torch.as_tensor(data.xquat[lay.head].copy())

    def solve(self, target: np.ndarray) -> np.ndarray:
        """The action (6) whose settled pose turns the head by ``target`` (a rotation vector, rest frame)."""
        import torch  # noqa: PLC0415

        key = tuple(np.round(np.asarray(target, dtype=float), 9))
        if key not in self._solved:
            goal = target_quat(torch.tensor(self.lay.rest_quat, dtype=torch.float64), torch.as_tensor(key))
            action = self.gains @ np.asarray(key)
            for _ in range(self.iterations):
                head = self._settled_rotation(action)
                conj = head * torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)
                action = action + self.gains @ quat_to_rotvec(quat_mul(conj, goal)).numpy()
            self._solved[key] = action
        return self._solved[key]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=float)
        solved = np.stack([self.solve(o[3:6] * TARGET_RAD) for o in obs])
        return solved + self.lead * (solved - obs[:, 6:12] / ACTION_SCALE)


@dataclass(frozen=True)
class TunedIK:
    """The :class:`ConvergedIK` whose lead was chosen on tuning targets, and every lead's median error there (rad)."""

    controller: ConvergedIK
    medians: dict[float, float]


def tune_converged_ik(*, model=None, leads: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0), episodes: int = 32,
                      seed: int = 80_000) -> TunedIK:
    """:class:`ConvergedIK` with the lead that gives the lowest median error on targets drawn from ``seed`` —
    tuning targets, apart from the ones it is then judged on (``90,000 + seed`` in the guide and the benchmark)."""
    solver = ConvergedIK(model)
    medians = {float(k): float(np.median(judge(solver.with_lead(k), episodes=episodes, seed=seed, model=model)))
               for k in leads}
    return TunedIK(solver.with_lead(min(medians, key=medians.get)), medians)


#: Model mismatch the judge can apply (the training randomisation's box corners): servo stiffness × and head mass ×.
MISMATCH = ((0.8, 1.2), (1.2, 0.8), (0.8, 0.8), (1.2, 1.2))


def mismatched(model=None, *, stiffness: float = 1.0, head_mass: float = 1.0):
    """A copy of the model whose leg servos are ``stiffness`` × as stiff and whose head is ``head_mass`` × as heavy
    (inertia scaled with it) — the robot differing from its model, as real servos and a real head do."""
    import copy  # noqa: PLC0415

    model = copy.deepcopy(model if model is not None else reachy.load_model())
    lay = layout(model)
    legs = list(lay.leg_actuators)
    model.actuator_gainprm[legs, 0] *= stiffness  # a position servo: force = kp·ctrl − kp·q
    model.actuator_biasprm[legs, 1] *= stiffness
    model.body_mass[lay.head] *= head_mass
    model.body_inertia[lay.head] *= head_mass
    return model


def batch_policy(single: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A one-observation policy (an ONNX session exported for batch 1, say) as a batch policy for :func:`judge`."""
    return lambda obs: np.stack([np.asarray(single(o), dtype=float).reshape(N_ACTIONS) for o in obs])


def committed(path: str | Path = RESULT):
    """The benchmark's committed ≥ 5-seed record and its per-seed table (median error in degrees per controller)."""
    import pandas as pd  # noqa: PLC0415

    path = Path(path)
    if not path.exists():
        raise SourceError(f"No benchmark record at {path}: run `python benchmarks/robot_reachy_head.py --seed N` for "
                          "N = 0…4 (each resumable, ≤ 4 minutes a call), then `--report`.")
    record = json.loads(path.read_text())
    missing = [k for k in ("seeds", "per_seed", "iqm_median_error_rad", "ratio_trained_over_untrained", "machine",
                           "date") if k not in record]
    if missing:
        raise SourceError(f"{path} lacks {missing}: rewrite it with `benchmarks/robot_reachy_head.py --report`.")
    table = pd.DataFrame({int(s): {**{f"{k} (°)": np.degrees(v) for k, v in row["median_rad"].items()},
                                   **{f"{k}, mismatched (°)": np.degrees(v)
                                      for k, v in row.get("mismatch_median_rad", {}).items()},
                                   "train_s": row["train_s"], "steps": row["steps"]}
                          for s, row in record["per_seed"].items()}).T.rename_axis("seed")
    return record, table
