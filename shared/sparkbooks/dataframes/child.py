"""The child-process protocol: each workload runs in a fresh Python process (``python -m sparkbooks.dataframes``),
so the CPU run and the accelerated run start equal — the GPU child installs ``cudf.pandas`` and ``cuml.accel``
before pandas or scikit-learn is imported, exactly as a user script would — and prints its result as one marked
JSON line. Nothing here imports pandas at module level for the same reason.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..accel import enable
from ..exceptions import AcceleratorUnavailableError, InputError, ServiceExitError
from .estimators import sklearn_suite
from .etl import pandas_etl
from .measure import accelerated_here, device_name

__all__ = ["CHILD_ACCEL_VARIABLES", "ENTRY_POINT", "REQUIRED_ACCELERATORS", "WORKLOADS", "main", "run_isolated"]

_MARK = "SPARKBOOKS_RESULT "
#: Environment variables through which an accelerated parent switches its children on.
CHILD_ACCEL_VARIABLES = ("CUML_ACCEL_ENABLED", "CUML_ACCEL_LOG_LEVEL")
#: What a child runs, ``python -m sparkbooks.dataframes`` (its ``__main__`` calls :func:`main`): a package's
#: ``__main__`` is not imported with the package, so the child runs it once, not a second copy of this module.
ENTRY_POINT = __name__.rpartition(".")[0]


WORKLOADS: dict[str, Callable[..., dict[str, Any]]] = {"pandas-etl": pandas_etl, "sklearn": sklearn_suite}
#: What each workload needs switched on in its GPU child; missing one is an error, not a quiet CPU run.
REQUIRED_ACCELERATORS: dict[str, tuple[str, ...]] = {"pandas-etl": ("cudf.pandas",), "sklearn": ("cuml.accel",)}


def run_isolated(name: str, params: Mapping[str, Any], *, path: str = "cpu", timeout: float = 1800) -> dict[str, Any]:
    """Run workload ``name`` in a fresh Python process on the ``cpu`` or ``gpu`` path; adds the child's wall time.

    Raises
    ------
    InputError
        No workload has that name.
    ServiceExitError
        The child failed; the message carries its last error line.
    """
    if name not in WORKLOADS:
        raise InputError(f"No workload named {name!r}. Workloads: {', '.join(WORKLOADS)}.")
    cmd = [sys.executable, "-m", ENTRY_POINT, name, "--path", path, "--params", json.dumps(dict(params))]
    env = dict(os.environ)
    if path == "cpu":
        # cuml.accel.install() exports CUML_ACCEL_ENABLED so children accelerate too (its .pth file installs it at
        # start-up): a CPU baseline must not inherit that, or it silently runs on the GPU.
        for variable in CHILD_ACCEL_VARIABLES:
            env.pop(variable, None)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - start
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ServiceExitError(f"Workload {name!r} failed on the {path} path: {last}")
    return json.loads(lines[-1][len(_MARK):]) | {"wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    """Run one workload in this process (the child's side of :func:`run_isolated`); print its result line."""
    parser = argparse.ArgumentParser(prog=f"python -m {ENTRY_POINT}", description=__doc__)
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--path", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--params", default="{}", help="JSON object of keyword arguments")
    args = parser.parse_args(argv)
    try:
        status = enable(prefer=args.path)  # before pandas / sklearn are imported
    except AcceleratorUnavailableError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.path == "cpu" and accelerated_here():
        print(f"AcceleratorUnavailableError: the CPU baseline found {', '.join(accelerated_here())} switched on "
              "(inherited from the parent): its timings would be GPU timings.", file=sys.stderr)
        return 1
    missing = [a for a in REQUIRED_ACCELERATORS[args.workload] if a not in accelerated_here()]
    if args.path == "gpu" and missing:
        print(f"AcceleratorUnavailableError: the GPU child has {', '.join(missing)} switched off; its timings would be "
              "CPU timings. Run `sparkbooks doctor` and check that cudf and cuml come from one RAPIDS release.",
              file=sys.stderr)
        return 1
    params = json.loads(args.params)
    n = params.pop("n_rows", params.pop("n_samples", None))
    result = WORKLOADS[args.workload](n, **params)
    result["path"] = status.describe()
    result["accelerators"] = accelerated_here()
    if args.path == "gpu":
        result["device"] = device_name()
        # cudf.pandas picks its RMM memory resource from this variable (managed memory by default where supported)
        result["memory_mode"] = os.environ.get("CUDF_PANDAS_RMM_MODE", "cudf.pandas default")
    print(_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
