"""A trained policy as files a robot stack loads: ONNX (onnxruntime) and TorchScript (libtorch), checked and timed.

rsl_rl's own export wrappers make both (``as_onnx`` / ``as_jit``, behind ``OnPolicyRunner.export_policy_to_onnx`` / ``_jit``,
the ones Isaac Lab's ``play.py`` calls): the actor's observation normaliser, MLP and mean action —
no sampling, no critic. :func:`parity` runs the same observations through the trained actor in torch
and through each file; :func:`latency` times one observation → action call on one CPU thread, the
way a robot's control loop calls it. The robot stack needs neither rsl_rl nor Python for the ONNX
file: ``onnxruntime`` (C, C++, Python, C#), input ``obs`` float32 ``[1, n_obs]``, output ``actions``.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import MissingDependencyError

__all__ = ["Exported", "export", "latency", "parity"]


@dataclass(frozen=True)
class Exported:
    """The written files and what the network expects (``n_obs`` float32 observations in, ``n_actions`` out)."""

    onnx: Path
    torchscript: Path
    n_obs: int
    n_actions: int
    runner: object  # rsl_rl's OnPolicyRunner the files came from (the torch reference)


def _ort():
    try:
        import onnxruntime  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("onnxruntime is not installed: `pip install onnxruntime` (CPU wheels for "
                                     "x86-64 and aarch64).") from None
    return onnxruntime


def export(run, out: Path, *, name: str = "policy", runner=None) -> Exported:
    """Write ``run``'s saved policy (a :class:`~sparkbooks.robot.batched.BatchedRun`) as ``name.onnx`` and ``name.pt``;
    or, given ``runner`` (rsl_rl's ``OnPolicyRunner`` with a policy loaded, e.g. :func:`.head_batch.load_runner`), its policy."""
    from .batched import load_runner  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    import torch  # noqa: PLC0415

    runner = runner if runner is not None else load_runner(run)
    module = runner.alg.get_policy().as_onnx(verbose=False).eval()  # rsl_rl's export wrapper: normaliser, MLP, mean
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        # rsl_rl's export_policy_to_onnx with the same opset and names, on torch's TorchScript-based exporter:
        # the default (dynamo) one gives the same graph for an MLP but takes ~10x longer to start
        torch.onnx.export(module, module.get_dummy_inputs(), str(out / f"{name}.onnx"), export_params=True,
                          opset_version=18, input_names=module.input_names, output_names=module.output_names,
                          dynamo=False)
        runner.export_policy_to_jit(str(out), f"{name}.pt")
    actor = runner.alg.get_policy()
    return Exported(out / f"{name}.onnx", out / f"{name}.pt", int(actor.obs_dim),
                    int(runner.env.num_actions), runner)


def _reference(exported: Exported):
    """The trained actor in torch, observation batch → mean action (what rsl_rl's own inference gives)."""
    import torch  # noqa: PLC0415
    from tensordict import TensorDict  # noqa: PLC0415

    actor = exported.runner.alg.get_policy().eval()

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = TensorDict({"policy": torch.as_tensor(obs, dtype=torch.float32)}, batch_size=[len(obs)])
            return actor(x).numpy()

    return act


def _load_script(path: Path):
    """The TorchScript file as libtorch loads it. torch 2.13 marks TorchScript deprecated (``torch.jit.load`` warns,
    pointing at ``torch.export``); libtorch still loads it, and rsl_rl and Isaac Lab still write it — ONNX is the
    format to build a robot stack on."""
    import torch  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.* is deprecated", category=DeprecationWarning)
        return torch.jit.load(str(path))


def _session(path: Path):
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # a control loop owns one core
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity(exported: Exported, observations: np.ndarray) -> dict:
    """Largest |action difference| of the ONNX and TorchScript files against the torch actor on ``observations``."""
    import torch  # noqa: PLC0415

    obs = np.asarray(observations, dtype=np.float32).reshape(-1, exported.n_obs)
    want = _reference(exported)(obs)
    session = _session(exported.onnx)
    got_onnx = np.concatenate([session.run(None, {"obs": o[None]})[0] for o in obs])  # exported for batch 1
    scripted = _load_script(exported.torchscript)
    with torch.inference_mode():
        got_jit = scripted(torch.as_tensor(obs)).numpy()
    return {"observations": len(obs), "onnx_max_diff": float(np.abs(got_onnx - want).max()),
            "torchscript_max_diff": float(np.abs(got_jit - want).max()), "action_scale": float(np.abs(want).max())}


def latency(exported: Exported, *, calls: int = 2000, seed: int = 0):
    """Microseconds per observation → action call on one CPU thread: torch (rsl_rl's actor), TorchScript, onnxruntime.

    The median over ``calls`` single calls after 100 untimed ones; the first quartile and the 99th
    percentile beside it (a control loop cares about the tail).
    """
    import pandas as pd  # noqa: PLC0415
    import torch  # noqa: PLC0415

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        obs = np.random.default_rng(seed).normal(0, 0.1, (calls, exported.n_obs)).astype(np.float32)
        session = _session(exported.onnx)
        scripted = _load_script(exported.torchscript).eval()
        reference = _reference(exported)

        def run_jit(o):
            with torch.inference_mode():
                return scripted(torch.from_numpy(o))

        ways = {"torch (rsl_rl actor)": reference, "TorchScript": run_jit,
                "onnxruntime": lambda o: session.run(None, {"obs": o})}
        rows = {}
        for label, call in ways.items():
            for o in obs[:100]:
                call(o[None])
            times = np.empty(calls)
            for i, o in enumerate(obs):
                start = time.perf_counter()
                call(o[None])
                times[i] = time.perf_counter() - start
            q1, median, p99 = np.percentile(times * 1e6, [25, 50, 99])
            rows[label] = {"median_us": median, "q1_us": q1, "p99_us": p99}
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame(rows).T
