"""Robot control by reinforcement learning: MuJoCo tasks, PPO training, throughput and rollout videos.

- :mod:`.tasks` — which MuJoCo tasks exist (Gymnasium's registry), their "solved" thresholds, and
  how many simulation steps per second a vectorised set of them runs;
- :mod:`.train` — Stable-Baselines3 PPO to a threshold, evaluated on its own episodes, with atomic
  checkpoints, resume, NaN stops and refused mismatched checkpoints;
- :mod:`.stats` — the field's statistics with the seed as the unit (rliable's IQM, stratified bootstrap,
  probability of improvement) and success rates with their intervals;
- :mod:`.lqr` — the classical controller a learned pendulum policy is held against;
- :mod:`.export` — a trained policy as ONNX and TorchScript files, checked against torch and timed;
- :mod:`.video` — an offscreen rollout (MuJoCo's renderer through EGL or OSMesa) as an animated GIF;
- :mod:`.warp_batch` — the GPU path's simulator: one MuJoCo Warp batch of thousands of copies (Warp's CPU
  device where the device policy gives no GPU), timed; :mod:`.warp_conformance` checks it against MuJoCo's C engine;
- :mod:`.pendulum_batch` — InvertedPendulum-v5's rules on that batch, an rsl_rl environment (domain randomisation);
- :mod:`.batched` — rsl_rl's PPO (Isaac Lab's) trained on it, evaluated in Gymnasium, checkpointed and resumed;
- :mod:`.robustness` — policies and LQR scored on randomised C-MuJoCo models (mass, gear, delay, noise);
- :mod:`.reachy` — Hugging Face's Reachy Mini: its MJCF and meshes read from the checksummed ``reachy-mini`` wheel;
- :mod:`.head_task` — Reachy Mini head-orientation tracking: the rules, and its judge in C MuJoCo;
- :mod:`.head_batch` — that task on a MuJoCo Warp batch with domain randomisation, trained with rsl_rl.
"""

from __future__ import annotations

import ctypes.util
import os

#: Why MuJoCo cannot render on this machine (None: it can try). Simulation and training never need rendering.
RENDER_PROBLEM: str | None = None


def _choose_gl() -> None:
    """Pick MuJoCo's OpenGL backend before ``import mujoco`` (which loads it): EGL on a headless machine.

    A backend whose library is missing would make ``import mujoco`` itself fail (PyOpenGL raises
    on import), taking the physics down with the renderer; rendering is switched off instead and
    :data:`RENDER_PROBLEM` says why.
    """
    global RENDER_PROBLEM
    backend = os.environ.setdefault("MUJOCO_GL", "egl").lower()
    library = {"egl": "EGL", "osmesa": "OSMesa", "glx": "GL"}.get(backend)
    if library and ctypes.util.find_library(library) is None:
        RENDER_PROBLEM = f"MUJOCO_GL={backend}, but lib{library} is not installed"
        os.environ["MUJOCO_GL"] = "disable"
    elif library:
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)


_choose_gl()

from . import (batched, export, head_batch, head_task, lqr, pendulum_batch, reachy, robustness,  # noqa: E402
               stats, tasks, train, video, warp_batch, warp_conformance)

__all__ = ["RENDER_PROBLEM", "batched", "export", "head_batch", "head_task", "lqr", "pendulum_batch", "reachy",
           "robustness", "stats", "tasks", "train", "video", "warp_batch", "warp_conformance"]
