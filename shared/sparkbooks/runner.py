"""Execute playbooks with papermill into ``runs/<slug>/``, refusing bad parameters first.

A run is staged in a hidden folder beside its destination. Only a successful run replaces
``runs/<slug>/<slug>.ipynb``, ``results.json`` and ``run.json``; a failed one is kept in
``runs/<slug>/failed/`` with an ``error.txt`` summary, so an earlier good run survives.

A run leaves nothing in the playbook's folder and never overlaps another run into the same folder
(:mod:`sparkbooks.run_isolation`: the run lock, the kernel's private runtime folder, leftovers of a
killed run removed by the next). A stopped run (``KeyboardInterrupt``: SIGINT, or SIGTERM as the
CLI maps it) publishes nothing and says that the last good run is kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import catalog, log
from .fileio import read_json, write_json_atomic, write_text_atomic
from .exceptions import NotebookExecutionError
from .hardware import detect, installed_version
from .parameters import validate
from .run_isolation import environ, kernel_manager_class, kernel_runtime, kernel_runtime_dir, remove_leftovers, run_lock
from .session import ENV_PLAYBOOK, ENV_PROFILE_REASON, ENV_RESOLVED, ENV_RESULTS
from .settings import settings

__all__ = ["RunPlan", "RunResult", "kernel_runtime_dir", "last_run", "parse_overrides", "plan", "run", "run_lock"]

DEFAULT_CELL_TIMEOUT_S = 1800


@dataclass(frozen=True)
class RunPlan:
    """A validated run, decided before anything executes."""

    playbook: catalog.Playbook
    profile: str
    profile_reason: str
    params: dict[str, Any]


@dataclass(frozen=True)
class RunResult:
    """What a run produced."""

    slug: str
    status: str
    notebook: Path
    results: Path | None
    seconds: float
    profile: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def parse_overrides(playbook: catalog.Playbook, pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``-p NAME VALUE`` text pairs into typed values; unknown names are refused.

    Examples
    --------
    >>> pb = catalog.get("start-here")
    >>> parse_overrides(pb, [("n_rows", "2e5")])
    {'n_rows': 200000}
    """
    out: dict[str, Any] = {}
    for name, text in pairs:
        if name not in playbook.parameters:
            validate({name: text}, playbook.parameters, playbook=playbook.slug)  # raises, listing valid names
        out[name] = playbook.parameters[name].parse(text, playbook=playbook.slug)
    return out


def plan(slug: str, *, profile: str = "auto", params: Mapping[str, Any] | None = None) -> RunPlan:
    """Validate a run: profile, overrides and the merged parameter set.

    Raises
    ------
    PlaybookNotFoundError, ParameterError
    """
    pb = catalog.get(slug)
    overrides = dict(params or {})
    if "profile" in overrides:
        profile = overrides.pop("profile")
    pb.parameters["profile"].check(profile, playbook=pb.slug)
    validate(overrides, pb.parameters, playbook=pb.slug)
    choice = pb.resolve_profile(profile, detect())
    merged = {**pb.profile_values(choice.profile), **overrides}
    return RunPlan(pb, choice.profile, choice.reason, validate(merged, pb.parameters, playbook=pb.slug))


def _publish(staging: Path, dest: Path) -> None:
    """Move a good run's files over the previous ones; ``run.json`` goes last."""
    dest.mkdir(parents=True, exist_ok=True)
    names = sorted((p.name for p in staging.iterdir()), key=lambda n: n == "run.json")
    for name in names:
        if (dest / name).is_dir() and not (dest / name).is_symlink():
            shutil.rmtree(dest / name)  # a folder (the run's work/) cannot be renamed over a non-empty one
        os.replace(staging / name, dest / name)
    shutil.rmtree(dest / "failed", ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def _keep_failure(staging: Path, dest: Path) -> Path:
    failed = dest / "failed"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(failed, ignore_errors=True)
    os.replace(staging, failed)
    return failed


def run(slug: str, *, profile: str = "auto", params: Mapping[str, Any] | None = None, out: Path | None = None,
        cell_timeout: int = DEFAULT_CELL_TIMEOUT_S, progress: bool = True) -> RunResult:
    """Execute one playbook with papermill.

    Parameters
    ----------
    slug
        The playbook to run.
    profile
        ``auto`` (from the hardware), or a profile the playbook defines.
    params
        Overrides on top of the profile, already typed (see :func:`parse_overrides`).
    out
        Runs folder; the notebook lands in ``out/<slug>/<slug>.ipynb``. Defaults to ``runs/``.

    Returns
    -------
    RunResult
        Writes ``<slug>.ipynb``, ``results.json`` and ``run.json`` on success.

    Raises
    ------
    ParameterError
        Before anything runs or is written.
    NotebookExecutionError
        A cell failed; the partial notebook and ``error.txt`` are in ``out/<slug>/failed/``.
    """
    run_plan = plan(slug, profile=profile, params=params)
    dest = Path(out or settings.runs_dir) / slug
    with run_lock(slug, dest):
        remove_leftovers(slug, dest, run_plan.playbook.directory)
        with kernel_runtime(slug, dest) as runtime:
            return _run_locked(run_plan, dest, runtime=runtime, cell_timeout=cell_timeout, progress=progress)


def _run_locked(run_plan: RunPlan, dest: Path, *, runtime: Path, cell_timeout: int, progress: bool) -> RunResult:
    import papermill as pm  # noqa: PLC0415 - heavy (~3 s); only the runner needs it

    pb, slug = run_plan.playbook, run_plan.playbook.slug
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}.staging-", dir=dest.parent))
    notebook = staging / f"{slug}.ipynb"
    results = staging / "results.json"
    started = datetime.now(timezone.utc)
    start = log.info(f"running {slug} · profile {run_plan.profile} ({run_plan.profile_reason})")
    info: dict[str, Any] = {
        "playbook": slug, "profile": run_plan.profile, "params": run_plan.params,
        "started": started.isoformat(timespec="seconds"), "machine": detect().summary(),
        "papermill": installed_version("papermill"), "sparkbooks": installed_version("sparkbooks"),
    }
    error: NotebookExecutionError | None = None
    try:
        env = {ENV_PLAYBOOK: slug, ENV_RESULTS: str(results), ENV_RESOLVED: "1", ENV_PROFILE_REASON: run_plan.profile_reason}
        with environ(**env):
            pm.execute_notebook(
                str(pb.path), str(notebook), parameters=run_plan.params, kernel_name="python3",
                cwd=str(pb.directory), progress_bar=progress, execution_timeout=cell_timeout,
                request_save_on_cell_execute=True, kernel_manager_class=kernel_manager_class(runtime),
            )
    except pm.PapermillExecutionError as exc:
        error = NotebookExecutionError(slug, exc.cell_index, exc.ename, exc.evalue)
    except Exception as exc:  # dead kernel, cell timeout, … : the run failed, keep what it left
        error = NotebookExecutionError(slug, -1, type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    except KeyboardInterrupt:  # stopped (SIGINT, or SIGTERM as the CLI maps it): publish nothing, say so
        shutil.rmtree(staging, ignore_errors=True)
        kept = dest / notebook.name
        log.warning(f"{slug} was stopped before it finished; nothing from this run was kept. "
                    + (f"The last good run is kept: {kept}" if kept.exists() else "There is no earlier good run."))
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    info |= {"seconds": round(seconds, 2), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if error is None:
        write_json_atomic(staging / "run.json", info | {"status": "ok"})
        _publish(staging, dest)
        log.info(f"finished {slug} ({{time_passed}}) → {dest / notebook.name}", time=start)
        return RunResult(slug, "ok", dest / notebook.name, dest / "results.json" if (dest / "results.json").exists() else None,
                         seconds, run_plan.profile)
    info |= {"status": "failed", "error": str(error)}
    write_json_atomic(staging / "run.json", info)
    write_text_atomic(staging / "error.txt", _error_summary(error, notebook))
    failed = _keep_failure(staging, dest)
    raise NotebookExecutionError(slug, error.cell_index, error.ename, error.evalue, str(failed / notebook.name))


def _error_summary(error: NotebookExecutionError, notebook: Path) -> str:
    where = f"cell {error.cell_index}" if error.cell_index >= 0 else "the kernel"
    return (
        f"Playbook {error.slug!r} failed in {where}.\n{error.ename}: {error.evalue}\n\n"
        f"The partially executed notebook is {notebook.name} in this folder; the last good run, if any, "
        "is untouched one level up.\n"
    )


def last_run(slug: str, *, out: Path | None = None) -> dict[str, Any] | None:
    """The newest of ``run.json`` and ``failed/run.json`` for a playbook, or ``None``."""
    dest = Path(out or settings.runs_dir) / slug
    runs = [(r, path.stat().st_mtime_ns) for path in (dest / "run.json", dest / "failed" / "run.json")
            if (r := read_json(path))]
    # "finished" has whole seconds (it is shown in the guide): two runs in one second are told apart by the file's mtime
    return max(runs, key=lambda pair: (pair[0].get("finished", ""), pair[1]))[0] if runs else None
