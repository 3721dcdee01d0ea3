"""A rollout rendered offscreen (MuJoCo's own renderer, EGL or OSMesa) into an animated GIF for the guide."""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass

from .tasks import _gym, check_task

__all__ = ["INSTALL_HINT", "Rollout", "record"]

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

    def html(self, title: str = "") -> str:
        """An ``<img>`` holding the GIF (a data URI: the guide stays one offline file), or the reason in words."""
        if self.gif is None:
            return f"<p><b>No video</b> ({title}): {self.reason}</p>"
        data = base64.b64encode(self.gif).decode()
        caption = f"{title} — " if title else ""
        return (f'<figure style="display:inline-block;margin:0 1em 0 0"><img src="data:image/gif;base64,{data}" '
                f'alt="{self.env_id} {title}"><figcaption>{caption}{self.steps} steps, return {self.episode_return:.0f}'
                f"{'' if self.ended else ' (the first ' + str(self.steps) + ' steps only: the episode went on)'}"
                "</figcaption></figure>")


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
