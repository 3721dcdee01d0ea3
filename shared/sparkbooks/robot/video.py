"""A rollout rendered offscreen (MuJoCo's own renderer, EGL or OSMesa) into an animated GIF for the guide."""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass

from .tasks import _gym, check_task

__all__ = ["INSTALL_HINT", "Rollout", "record", "record_head"]

INSTALL_HINT = ("Offscreen rendering needs OpenGL without a display: Debian/Ubuntu `apt install libegl1 libegl-mesa0 "
                "libgl1-mesa-dri` (MUJOCO_GL=egl, the default here; on a Spark the NVIDIA driver's EGL) or `apt install "
                "libosmesa6` and MUJOCO_GL=osmesa. Training does not need it.")


@dataclass(frozen=True)
class Rollout:
    """One rendered episode (or its first ``steps``): the GIF, the return, or why nothing could be drawn."""

    env_id: str
    steps: int
    episode_return: float
    gif: bytes | None
    reason: str | None = None  # why there is no video
    ended: bool = True  # the episode ended within the rollout (False: cut at ``steps``, the return is partial)
    caption: str | None = None  # said instead of "steps, return" (a task scored otherwise)

    def html(self, title: str = "") -> str:
        """An ``<img>`` holding the GIF (a data URI: the guide stays one offline file), or the reason in words."""
        if self.gif is None:
            return f"<p><b>No video</b> ({title}): {self.reason}</p>"
        data = base64.b64encode(self.gif).decode()
        caption = f"{title} — " if title else ""
        said = self.caption or (f"{self.steps} steps, return {self.episode_return:.0f}"
                                f"{'' if self.ended else ' (the first ' + str(self.steps) + ' steps only: the episode went on)'}")
        return (f'<figure style="display:inline-block;margin:0 1em 0 0"><img src="data:image/gif;base64,{data}" '
                f'alt="{self.env_id} {title}"><figcaption>{caption}{said}</figcaption></figure>')


def record(env_id: str, policy=None, *, steps: int = 300, seed: int = 0, width: int = 320, height: int = 240,
           every: int = 2) -> Rollout:
    """Run ``policy`` (an SB3 model, or observation → action; None: random actions) for up to ``steps``; every ``every``-th frame, in real time.

    A missing OpenGL backend does not stop anything: the rollout comes back without a GIF and with
    the reason and :data:`INSTALL_HINT`.
    """
    from PIL import Image  # noqa: PLC0415

    from . import RENDER_PROBLEM  # noqa: PLC0415

    gym = _gym()
    check_task(env_id)
    if RENDER_PROBLEM:
        return Rollout(env_id, 0, float("nan"), None, f"{RENDER_PROBLEM}. {INSTALL_HINT}")
    try:
        env = gym.make(env_id, render_mode="rgb_array", width=width, height=height)
        env.reset(seed=seed)
        frames = [env.render()]
    except Exception as exc:  # noqa: BLE001 - EGL/OSMesa failures surface as ImportError, RuntimeError or mujoco.FatalError
        backend = os.environ.get("MUJOCO_GL", "egl")
        return Rollout(env_id, 0, float("nan"), None, f"MuJoCo could not render with MUJOCO_GL={backend} "
                       f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else '—'}). {INSTALL_HINT}")
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    total, done, n = 0.0, False, 0
    try:
        while not done and n < steps:
            if policy is None:
                action = env.action_space.sample()
            elif hasattr(policy, "predict"):  # a Stable-Baselines3 model
                action = policy.predict(obs, deterministic=True)[0]
            else:  # observation → action (an rsl_rl policy, an ONNX session wrapped in a function, LQR)
                action = policy(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, n, done = total + float(reward), n + 1, terminated or truncated
            if n % every == 0:
                frames.append(env.render())
    finally:
        env.close()
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    frame_ms = round(1000 * every * env.unwrapped.dt)  # simulated time per kept frame: the GIF plays in real time
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0, optimize=True)
    return Rollout(env_id, n, total, buffer.getvalue(), ended=done)


def _gif(frames, frame_ms: int) -> bytes:
    from PIL import Image  # noqa: PLC0415

    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0, optimize=True)
    return buffer.getvalue()


def record_head(policy, *, episodes: int = 3, seed: int = 90_000, width: int = 320, height: int = 240,
                every: int = 2) -> Rollout:
    """Reachy Mini tracking ``episodes`` head targets one after another (``policy`` as for :func:`.head_task.judge`,
    the same targets for the same ``seed``), filmed by the MJCF's ``studio_close`` camera, in real time."""
    import mujoco  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from . import RENDER_PROBLEM, head_task, reachy  # noqa: PLC0415

    name = "reachy-mini head"
    if RENDER_PROBLEM:
        return Rollout(name, 0, float("nan"), None, f"{RENDER_PROBLEM}. {INSTALL_HINT}")
    model = reachy.load_model(scene=True)  # the wheel's floor, light and sky around the same robot
    states: list[list[np.ndarray]] = []
    scores = head_task.judge(policy, episodes=episodes, seed=seed, model=model,
                             watch=lambda worlds: states.append([d.qpos.copy() for d in worlds]))
    try:
        renderer = mujoco.Renderer(model, height, width)
    except Exception as exc:  # noqa: BLE001 - EGL/OSMesa failures surface as several types
        return Rollout(name, 0, float("nan"), None, f"MuJoCo could not render with MUJOCO_GL="
                       f"{os.environ.get('MUJOCO_GL', 'egl')} ({type(exc).__name__}). {INSTALL_HINT}")
    data, frames = mujoco.MjData(model), []
    with renderer:
        for e in range(episodes):
            for t in range(0, len(states), every):
                data.qpos[:] = states[t][e]
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, camera="studio_close")
                frames.append(renderer.render())
    frame_ms = round(1000 * every * head_task.DECIMATION * model.opt.timestep)
    said = (f"{episodes} target{'s' if episodes != 1 else ''} of {head_task.EPISODE_STEPS * head_task.DECIMATION * model.opt.timestep:.1f} s each; "
            f"final error {', '.join(f'{np.degrees(x):.1f}°' for x in scores)}")
    return Rollout(name, episodes * head_task.EPISODE_STEPS, float("nan"), _gif(frames, frame_ms), caption=said)
