"""MuJoCo Warp: ``n`` copies of one MuJoCo model stepped together, on an NVIDIA GPU or Warp's CPU device.

MuJoCo Warp (``mujoco_warp``) runs MuJoCo's pipeline as NVIDIA Warp kernels over ``nworld`` copies of
one model: on an NVIDIA GPU (one CUDA graph per step), or on Warp's CPU device — the same code and
the same single-precision numbers, only slower. Where it runs is the device policy's answer
(:func:`choose_device`); :func:`simulation_rate` and :func:`throughput` time the physics alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import NamedTuple

from ..exceptions import InputError, MissingDependencyError
from . import tasks

__all__ = ["WarpDevice", "choose_device", "simulation_rate", "task_model", "throughput"]


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

    def per_world(self, names) -> dict:
        """Give each named model field one row per world (Warp reads row ``world % rows``), for domain randomisation:
        ``{name: (the live per-world rows, written in place between steps; the nominal row)}``."""
        fields = {}
        for name in names:
            field = getattr(self.m, name)
            nominal = self.wp.to_torch(field)
            rows = nominal.repeat(self.n, *([1] * (nominal.dim() - 1))).contiguous()
            setattr(self.m, name, self.wp.from_torch(rows, dtype=field.dtype))
            fields[name] = (rows, rows[:1].clone())
        return fields

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

