"""The GPU contract: every call the package makes into RAPIDS, cuOpt and rapids-singlecell, checked against the real API.

No machine here runs those calls (no GPU), but the CUDA 13 wheels import without one. This file

* **scans** the package's source (AST) for every call whose callee resolves to a GPU library —
  through ``import x as y``, ``from x import y``, aliases (``pp = rsc.pp if gpu else sc.pp``),
  instances (``model = DataModel(); model.set_…(…)``) and known return types — and lists any
  reference to a GPU library that is *not* a direct call (passing ``rsc.pp.pca`` around would
  escape the check, so it fails instead);
* **snapshots** (``python tests/gpu_contract.py --write``, run in an environment with the real
  wheels: ``make gpu-api-snapshot``) the signature of each callee, the library versions, and what
  ``cuml.accel`` decides for the estimator settings the package uses (supported on the GPU, or
  ``UnsupportedOnGPU`` with cuML's reason);
* lets ``tests/test_gpu_contract.py`` bind every call site's arguments to the snapshotted
  signature on every commit, without the 5 GB of wheels.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "shared" / "sparkbooks"
SNAPSHOT = Path(__file__).with_name("gpu_api_snapshot.json")
GPU_ROOTS = ("cudf", "cuml", "cuopt", "rapids_singlecell", "cugraph", "nx_cugraph", "cupy", "cuvs", "rmm", "pylibraft")
DISTRIBUTIONS = ("cudf-cu13", "cuml-cu13", "cuopt-cu13", "cugraph-cu13", "nx-cugraph-cu13", "rapids-singlecell-cu13",
                 "cupy-cuda13x", "umap-learn", "hdbscan", "scikit-learn")
#: Return types the scanner cannot see (unannotated in the library): callee → class of what it returns.
RETURNS = {"cuopt.linear_programming.Solve": "cuopt.linear_programming.Solution"}
#: Functions the package replaces rather than calls: cudf.pandas' call hooks (no arguments; its own pytest
#: profiler wraps them the same way) that start-here wraps to count GPU calls and fallbacks. Their existence
#: is snapshotted like a call target's.
HOOKS = ("cudf.pandas.fast_slow_proxy._fast_function_call", "cudf.pandas.fast_slow_proxy._slow_function_call")


@dataclass(frozen=True)
class CallSite:
    """One call into a GPU library: where, what, and how it is called."""

    where: str
    target: str
    positional: int
    keywords: tuple[str, ...]
    splat: bool = False  # *args or **kwargs: only what is visible can be checked


@dataclass
class Scan:
    calls: list[CallSite] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)


def _is_gpu(path: str) -> bool:
    return path.split(".")[0] in GPU_ROOTS


class _Scope(ast.NodeVisitor):
    """Resolves names to dotted library paths within one module, then records calls."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.names: dict[str, set[str]] = {}
        self.result = Scan()
        self._callees: set[int] = set()
        self._bound: set[int] = set()

    # --- resolution -------------------------------------------------------------------------
    def resolve(self, node: ast.AST) -> set[str]:
        if isinstance(node, ast.Name):
            return set(self.names.get(node.id, ()))
        if isinstance(node, ast.Attribute):
            return {f"{base}.{node.attr}" for base in self.resolve(node.value)}
        if isinstance(node, ast.Call):
            out = set()
            for callee in self.resolve(node.func):
                out.add(f"{RETURNS[callee]}()" if callee in RETURNS else f"{callee}()")
            return out
        if isinstance(node, ast.IfExp):
            return self.resolve(node.body) | self.resolve(node.orelse)
        return set()

    def _bind(self, target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                self._bind(t, v)
            return
        if isinstance(target, ast.Name):
            resolved = self.resolve(value)
            if resolved:
                self.names[target.id] = self.names.get(target.id, set()) | resolved
                for node in ast.walk(value):
                    self._bound.add(id(node))

    # --- visiting ---------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.names.setdefault(alias.asname, set()).add(alias.name)
            else:
                root = alias.name.split(".")[0]
                self.names.setdefault(root, set()).add(root)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            for alias in node.names:
                self.names.setdefault(alias.asname or alias.name, set()).add(f"{node.module}.{alias.name}")

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            self._bind(target, node.value)

    def visit_Call(self, node: ast.Call) -> None:
        targets = {t for t in self.resolve(node.func) if _is_gpu(t)}
        for target in sorted(targets):
            self.result.calls.append(CallSite(
                where=f"{self.where}:{node.lineno}", target=target.replace("()", ""),
                positional=sum(not isinstance(a, ast.Starred) for a in node.args),
                keywords=tuple(k.arg for k in node.keywords if k.arg is not None),
                splat=any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords)))
        for sub in ast.walk(node.func):
            self._callees.add(id(sub))
        self.generic_visit(node)

    def finish(self, tree: ast.AST) -> Scan:
        # the inner parts of an attribute chain (`cuml` in `cuml.UMAP`): the outermost reference is judged instead.
        # One pass for the whole module: asking per node walked the tree again (quadratic; ≈ 45 s of every pytest
        # collection, on each xdist worker)
        chained = {id(p.value) for p in ast.walk(tree) if isinstance(p, ast.Attribute)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Attribute, ast.Name)) and id(node) not in self._callees and id(node) not in self._bound:
                if id(node) in chained:
                    continue
                gpu = sorted(t for t in self.resolve(node) if _is_gpu(t) and "()" not in t)
                if gpu and isinstance(node, ast.Attribute) and gpu[0] not in HOOKS:
                    self.result.uncovered.append(f"{self.where}:{node.lineno} uses {gpu[0]} without calling it")
        return self.result


def scan_source(source: str, where: str) -> Scan:
    """Every GPU call site in ``source`` (one module), and every GPU reference that is not a call."""
    tree = ast.parse(source)
    scope = _Scope(where)
    scope.visit(tree)
    return scope.finish(tree)


def scan_package() -> Scan:
    """:func:`scan_source` over every module of the package, plus the GPU probe's code string."""
    total = Scan()
    for path in sorted(PACKAGE.rglob("*.py")):
        found = scan_source(path.read_text(), str(path.relative_to(REPO)))
        total.calls += found.calls
        total.uncovered += found.uncovered
    sys.path.insert(0, str(REPO / "shared"))
    from sparkbooks import devices

    probe = scan_source(devices._CUDF_PROBE, "sparkbooks.devices._CUDF_PROBE")
    total.calls += probe.calls
    return total


# --- the snapshot (generated where the wheels are installed) ------------------------------------
def _lookup(dotted: str) -> Any:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _describe(obj: Any, *, method: bool) -> dict[str, Any]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return {"kind": "class" if inspect.isclass(obj) else "callable", "params": None}
    params = [{"name": p.name, "kind": p.kind.name, "default": p.default is not inspect.Parameter.empty}
              for p in sig.parameters.values()]
    if method and params and params[0]["name"] == "self":
        params = params[1:]
    return {"kind": "class" if inspect.isclass(obj) else "method" if method else "function", "params": params}


def accelerated_estimators() -> dict[str, Any]:
    """The estimators the package fits under cuml.accel, built by the package's own builders (CPU objects).

    The topic model is built as on a GPU path (``init="auto"`` resolves to what cuml.accel is given there).
    """
    sys.path.insert(0, str(REPO / "shared"))
    from sparkbooks import topics
    from sparkbooks.finance import portfolio
    from sparkbooks.dataframes import workloads

    model = topics.TopicModel(init="spectral", random_state=0)  # what umap_init() picks under cuml.accel
    cpu_model = topics.TopicModel(init="pca", random_state=0)  # what it picks on a CPU: cuML refuses it
    out = {"topics.umap_5d": model.umap_estimator(n_components=5, min_dist=0.0, n_epochs=100),
           "topics.umap_5d_cpu_init": cpu_model.umap_estimator(n_components=5, min_dist=0.0, n_epochs=100),
           "topics.umap_2d": model.umap_estimator(n_components=2, min_dist=0.1),
           "topics.hdbscan": model.hdbscan_estimator(),
           "portfolio.kde": portfolio.kde_estimator(0.5)}
    out |= {f"workloads.{name}": est for name, est in workloads.sklearn_estimators(seed=0).items()}
    return out


def settings_of(estimator: Any) -> dict[str, Any]:
    """An estimator's constructor settings as JSON-able values (what cuML's decision depends on)."""
    def plain(v: Any) -> Any:
        if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")):
            return repr(v)
        return v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)

    return {k: plain(v) for k, v in sorted(estimator.get_params(deep=False).items())}


def _gpu_class(estimator: Any) -> Any:
    """cuML's class for a CPU estimator, as cuml.accel maps it (its override module's ``_gpu_class``)."""
    parts = type(estimator).__module__.split(".")
    # sklearn.cluster._kmeans → sklearn.cluster; umap.umap_ → umap; hdbscan.hdbscan_ → hdbscan
    public = parts[0] if parts[0] in ("umap", "hdbscan") else ".".join(p for p in parts if not p.startswith("_"))
    module = importlib.import_module(f"cuml.accel._overrides.{public}")
    return getattr(module, type(estimator).__name__)._gpu_class


def _accelerated() -> dict[str, dict[str, Any]]:
    """What cuml.accel decides for each estimator setting the package builds."""
    from cuml.internals.interop import UnsupportedOnGPU

    out = {}
    for name, estimator in accelerated_estimators().items():
        gpu_class = _gpu_class(estimator)
        try:
            gpu_class._params_from_cpu(estimator)
            verdict = "supported"
        except UnsupportedOnGPU as exc:
            verdict = f"unsupported: {exc}"
        out[name] = {"estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
                     "gpu_class": f"{gpu_class.__module__}.{gpu_class.__name__}", "params": settings_of(estimator),
                     "gpu": verdict}
    return out


def build_snapshot() -> dict[str, Any]:
    """The snapshot of what the installed wheels offer for every call site the package has now."""
    found = scan_package()
    callables, missing = {}, []
    for site in found.calls:
        if site.target in callables:
            continue
        owner, _, attr = site.target.rpartition(".")
        try:
            obj = _lookup(site.target)
            method = inspect.isclass(_lookup(owner)) if owner else False
        except (ImportError, AttributeError) as exc:
            missing.append(f"{site.target} ({type(exc).__name__}: {exc})")
            continue
        callables[site.target] = _describe(obj, method=method)
    for target in HOOKS:
        try:
            callables[target] = _describe(_lookup(target), method=False)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{target} ({type(exc).__name__}: {exc})")
    versions = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    from cuopt.linear_programming.solver_settings.solver_settings import get_solver_parameter_names

    return {"generated_by": "python tests/gpu_contract.py --write (make gpu-api-snapshot)",
            "python": sys.version.split()[0], "versions": versions, "missing": sorted(missing),
            "callables": dict(sorted(callables.items())), "accelerated": _accelerated(),
            "cuopt_parameters": sorted(get_solver_parameter_names())}


def write_snapshot(path: Path = SNAPSHOT) -> dict[str, Any]:
    snapshot = build_snapshot()
    path.write_text(json.dumps(snapshot, indent=1, sort_keys=False) + "\n")
    return snapshot


def bind(site: CallSite, entry: dict[str, Any]) -> str | None:
    """Why ``site`` does not fit the snapshotted signature (``None``: it fits)."""
    if entry.get("params") is None:
        return None  # a compiled callable without an introspectable signature: existence is all we know
    kinds = inspect.Parameter
    params = [inspect.Parameter(p["name"], getattr(kinds, p["kind"]), default=None if p["default"] else kinds.empty)
              for p in entry["params"]]
    sig = inspect.Signature(params)
    args = [object()] * site.positional
    kwargs = {k: object() for k in site.keywords}
    try:
        (sig.bind_partial if site.splat else sig.bind)(*args, **kwargs)
    except TypeError as exc:
        return f"{site.where}: {site.target}{sig}: {exc}"
    return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the GPU API snapshot from the installed RAPIDS wheels.")
    parser.add_argument("--write", action="store_true", help=f"write {SNAPSHOT.name}")
    args = parser.parse_args()
    if args.write:
        snap = write_snapshot()
        print(f"{len(snap['callables'])} callables, {len(snap['missing'])} missing, "
              f"{len(snap['accelerated'])} accelerated estimator settings → {SNAPSHOT}")
        print(json.dumps(snap["versions"]))
    else:
        scanned = scan_package()
        for call in scanned.calls:
            print(call)
        for line in scanned.uncovered:
            print("UNCOVERED", line)
