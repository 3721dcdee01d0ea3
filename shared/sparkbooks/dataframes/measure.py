"""Measuring a workload: cold and warm runs per stage, and the calls cudf.pandas and cuml.accel ran on the GPU
or sent back to the CPU (counted in a separate run, so the count costs the timings nothing)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import devices
from ..timing import Stopwatch

__all__ = ["accelerated_here", "device_name", "gpu_sync", "profiled_counts", "run_repeated"]


def gpu_sync() -> None:
    """Wait for queued GPU work before a clock read (cupy is loaded whenever cudf is)."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.cuda.runtime.deviceSynchronize()


@contextmanager
def _cudf_pandas_tally() -> Iterator[dict[str, Any]]:
    """Count cudf.pandas' GPU calls and CPU fallbacks, and time the fallbacks, through its own call hooks.

    cudf.pandas calls ``_fast_function_call()`` after every call that ran on the GPU and
    ``_slow_function_call()`` before every fallback; wrapping them costs nothing per call, where its
    public ``Profiler`` traces every Python line (minutes on a large frame). The fallbacks' seconds come
    from timing ``_fast_slow_function_call`` (every proxied call goes through it; it returns whether the fast
    path ran): a call that ended on the slow path counts whole — the failed GPU try and the copies to the host
    are part of what the fallback cost — unless an enclosing call was already falling back (counted once).
    """
    import time  # noqa: PLC0415

    from cudf.pandas import fast_slow_proxy as fsp  # noqa: PLC0415

    tally: dict[str, Any] = {"gpu": 0, "cpu": 0, "fallbacks": set(), "cpu_s": 0.0}
    fast, slow, call = fsp._fast_function_call, fsp._slow_function_call, fsp._fast_slow_function_call
    stack: list[list[bool]] = []  # one [falling back?] per proxied call in progress, innermost last

    def on_fast():
        tally["gpu"] += 1

    def on_slow():
        tally["cpu"] += 1
        if stack:
            stack[-1][0] = True
        args = sys._getframe(1).f_locals.get("slow_args") or (None,)
        tally["fallbacks"].add(getattr(args[0], "__qualname__", type(args[0]).__qualname__))

    def timed(func, /, *args, **kwargs):
        frame = [False]
        outer_slow = any(f[0] for f in stack)
        stack.append(frame)
        start = time.perf_counter()
        try:
            result = call(func, *args, **kwargs)
        finally:
            stack.pop()
        if frame[0] and not outer_slow:
            tally["cpu_s"] += time.perf_counter() - start
        return result

    patched = [m for m in list(sys.modules.values())  # modules that imported the function by name call their own copy
               if getattr(m, "__name__", "").startswith("cudf.pandas") and getattr(m, "_fast_slow_function_call", None) is call]
    fsp._fast_function_call, fsp._slow_function_call = on_fast, on_slow
    for module in patched:
        module._fast_slow_function_call = timed
    try:
        yield tally
    finally:
        fsp._fast_function_call, fsp._slow_function_call = fast, slow
        for module in patched:
            module._fast_slow_function_call = call


def profiled_counts(stages: list[tuple[str, Callable[[dict], Any]]], state: dict) -> dict[str, dict[str, Any]]:
    """Per stage: calls cudf.pandas / cuml.accel ran on the GPU, calls they sent to the CPU, which functions fell
    back, the stage's seconds in this run (``stage_s``) and the seconds its fallbacks took (``cpu_s``).

    cudf.pandas' counts and times come from its own call hooks (:func:`_cudf_pandas_tally`), cuml.accel's from
    ``cuml.accel.profile`` (``cpu_time`` per method); the counting run is separate from the timed ones.
    """
    import time  # noqa: PLC0415
    from contextlib import ExitStack  # noqa: PLC0415

    on = accelerated_here()
    if not on:  # a CPU child: nothing to count, so no extra run
        return {name: {"gpu_calls": 0, "cpu_calls": 0, "fallbacks": []} for name, _ in stages}
    counts = {}
    for name, fn in stages:
        with ExitStack() as stack:
            pandas_tally = stack.enter_context(_cudf_pandas_tally()) if "cudf.pandas" in on else None
            accel_prof = None
            if "cuml.accel" in on:
                import cuml.accel  # noqa: PLC0415

                accel_prof = stack.enter_context(cuml.accel.profile(quiet=True))
            gpu_sync()
            start = time.perf_counter()
            fn(state)
            gpu_sync()
            stage_s = time.perf_counter() - start
        gpu = cpu = 0
        cpu_s = 0.0
        fallbacks: set[str] = set()
        if pandas_tally is not None:
            gpu, cpu, fallbacks = pandas_tally["gpu"], pandas_tally["cpu"], set(pandas_tally["fallbacks"])
            cpu_s += pandas_tally["cpu_s"]
        if accel_prof is not None:
            for method, stats in accel_prof.method_calls.items():
                gpu, cpu = gpu + stats.gpu_calls, cpu + stats.cpu_calls
                cpu_s += getattr(stats, "cpu_time", 0.0)
                if stats.cpu_calls:
                    reasons = "; ".join(sorted(stats.fallback_reasons))
                    fallbacks.add(method + (f" ({reasons})" if reasons else ""))
        counts[name] = {"gpu_calls": gpu, "cpu_calls": cpu, "fallbacks": sorted(fallbacks),
                        "stage_s": stage_s, "cpu_s": min(cpu_s, stage_s)}
    return counts


def run_repeated(stages, *, repeats: int, fresh_state: Callable[[], dict]) -> dict[str, Any]:
    """One cold run, ``repeats`` warm runs (median per stage), then (accelerated only) one profiled run for call counts."""
    import statistics  # noqa: PLC0415

    runs, state = [], {}
    for _ in range(1 + repeats):
        state = fresh_state()
        watch = Stopwatch(sync=gpu_sync)
        for name, fn in stages:
            watch.call(name, fn, state)
        runs.append(watch.seconds)
    counts = profiled_counts(stages, fresh_state() if accelerated_here() else {})
    warm = {name: statistics.median(r[name] for r in runs[1:]) for name, _ in stages}
    return {"cold": runs[0], "warm": warm, "warm_runs": {n: [r[n] for r in runs[1:]] for n, _ in stages},
            "total_cold_s": sum(runs[0].values()), "total_s": sum(warm.values()), "counts": counts, "state": state}


def accelerated_here() -> list[str]:
    """The zero-code-change accelerators switched on in this process (a CPU baseline must have none)."""
    on = []
    cudf_pandas = sys.modules.get("cudf.pandas")
    if cudf_pandas is not None and getattr(cudf_pandas, "LOADED", False):
        on.append("cudf.pandas")
    if devices.cuml_accel_active():
        on.append("cuml.accel")
    return on


def device_name() -> str:
    """The GPU's name as CUDA reports it (cupy is loaded whenever cudf is); a label only."""
    cupy = sys.modules.get("cupy")
    try:
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - a label only: never fail a measured run for it
        return "unknown GPU"
