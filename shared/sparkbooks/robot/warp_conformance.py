"""MuJoCo Warp against MuJoCo's C engine, the answer key: the same states and controls stepped in both.

:func:`conformance` is the check (one step from identical states on several worlds with different controls,
which catches a batch that mixes worlds up); :func:`agreement` is a one-world wiring check over a trajectory.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError
from .warp_batch import _Batch, choose_device, task_model

__all__ = ["agreement", "conformance"]


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
