"""Execute playbooks with papermill into ``runs/<slug>/``, refusing bad parameters first.

A run is staged in a hidden folder beside its destination. Only a successful run replaces
``runs/<slug>/<slug>.ipynb``, ``results.json`` and ``run.json``; a failed one is kept in
``runs/<slug>/failed/`` with an ``error.txt`` summary, so an earlier good run survives.

A run leaves nothing in the playbook's folder: the kernel's IPC sockets and connection file live
in a private runtime folder (:func:`kernel_runtime_dir`), removed when the run ends by any means
short of SIGKILL; what a killed run left behind (that folder, its staging folder, sockets an older
version put in the playbook's folder) is removed by the next run of the same playbook into the
same folder, under the run lock. A stopped run (``KeyboardInterrupt``: SIGINT, or SIGTERM as the
CLI maps it) publishes nothing and says that the last good run is kept.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from . import catalog, log
from .fileio import read_json, write_json_atomic, write_text_atomic
from .exceptions import NotebookExecutionError, ParameterError, RunLockedError
from .hardware import detect, installed_version
from .parameters import validate
from .session import ENV_PLAYBOOK, ENV_PROFILE_REASON, ENV_RESOLVED, ENV_RESULTS
from .settings import settings

__all__ = ["RunPlan", "RunResult", "kernel_runtime_dir", "last_run", "parse_overrides", "plan", "run", "run_lock"]

DEFAULT_CELL_TIMEOUT_S = 1800
_OWNER = "owner.pid"  # in a kernel runtime folder: the process whose run it serves


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


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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


@contextmanager
def run_lock(slug: str, dest: Path) -> Iterator[Path]:
    """Hold the one lock for runs of ``slug`` into ``dest``; a second holder is refused at once.

    An advisory ``flock`` on a file beside the destination: the kernel drops it when the holder
    exits by any means (finished, crashed, killed, interrupted), so a stale lock cannot outlive it.

    Raises
    ------
    RunLockedError
        Another live process holds it; the message names its pid.
    """
    import fcntl  # noqa: PLC0415 - POSIX only, as the runner is

    path = Path(dest).parent / f".{slug}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the lifetime of the run
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLockedError(
                f"Another run of {slug!r} ({holder}) is writing to {dest}. Wait for it to finish, or run into another "
                f"folder with --out DIR; different playbooks may run at the same time.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield path
    finally:
        handle.close()  # closing the descriptor releases the lock


def kernel_runtime_dir(slug: str, dest: Path) -> Path:
    """The private folder for the kernel sockets and connection file of runs of ``slug`` into ``dest``.

    One folder per run lock (the same playbook and destination), under the system's temporary folder
    and private to this user: short, as a socket path must be (at most 107 bytes on Linux), and known
    to the next run, which removes what a killed run left there. Every run also removes the folders
    of other killed runs (their ``owner.pid`` process is gone).

    Examples
    --------
    >>> kernel_runtime_dir("start-here", Path("/x/runs/start-here")).name
    'start-here-4b4b97ef78bb'
    """
    key = hashlib.sha256(str(Path(dest).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"sparkbooks-{os.getuid()}" / f"{slug[:24]}-{key}"


def _private_dir(path: Path) -> Path:
    """Create ``path`` (mode 700) under a parent that this user owns; refuse a parent someone else planted."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(path.parent)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return Path(tempfile.mkdtemp(prefix="sparkbooks-kernel-"))  # not ours to use: a fresh one, cleaned as well
    path.mkdir(mode=0o700, exist_ok=True)  # exists only if a killed run's could not be removed: new names are chosen
    return path


def _remove_leftovers(slug: str, dest: Path, playbook_dir: Path) -> None:
    """What a killed run of ``slug`` into ``dest`` left behind; called under the run lock, so none of it is live.

    Its staging folder, its kernel runtime folder, and ``kernel-ipc-N`` sockets in the playbook's folder
    (where runs put them before the runtime folder existed).
    """
    for stale in dest.parent.glob(f".{slug}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(kernel_runtime_dir(slug, dest), ignore_errors=True)
    for sock in playbook_dir.glob("kernel-ipc-*"):
        with suppress(OSError):  # gone meanwhile, or a read-only folder: nothing to do there
            if sock.name.removeprefix("kernel-ipc-").isdigit() and stat.S_ISSOCK(sock.lstat().st_mode):
                sock.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _sweep_orphans(base: Path) -> None:
    """Runtime folders whose run was killed, whatever playbook and destination: their owner process is gone."""
    for folder in base.iterdir():
        try:
            owner = int((folder / _OWNER).read_text())
        except (OSError, ValueError):  # being created, or not a run's: leave it
            continue
        if owner != os.getpid() and not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _kernel_runtime(slug: str, dest: Path) -> Iterator[Path]:
    """A fresh private runtime folder for one run's kernel, removed on every way out of the block."""
    path = _private_dir(kernel_runtime_dir(slug, dest))
    try:
        (path / _OWNER).write_text(str(os.getpid()))
        if path.parent == kernel_runtime_dir(slug, dest).parent:
            _sweep_orphans(path.parent)
        with _environ(JUPYTER_RUNTIME_DIR=str(path)):
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _kernel_manager_class(runtime: Path):
    """Kernels on local IPC sockets instead of TCP ports: nothing listens on the network, and ipykernel has
    no reason to warn that traffic is unencrypted (it warns for TCP only). Windows has no IPC transport.

    The sockets and the connection file go in ``runtime`` (absolute paths): jupyter_client's default
    puts ``kernel-ipc-N`` sockets in the kernel's working directory, the playbook's folder.
    """
    from jupyter_client.manager import AsyncKernelManager  # noqa: PLC0415

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("connection_file", str(runtime / "kernel.json"))
            kwargs.setdefault("ip", str(runtime / "kernel-ipc"))
            super().__init__(**kwargs)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client sends SIGINT before every shutdown request; a kernel still finishing its last reply
            # then logs "KeyboardInterrupt caught in kernel." — noise after a run that finished. The shutdown
            # request (then SIGTERM, then SIGKILL) still stops it; a user's interrupt outside shutdown still works.
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    return IPCKernelManager if os.name == "posix" else AsyncKernelManager


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
        _remove_leftovers(slug, dest, run_plan.playbook.directory)
        with _kernel_runtime(slug, dest) as runtime:
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
        with _environ(**env):
            pm.execute_notebook(
                str(pb.path), str(notebook), parameters=run_plan.params, kernel_name="python3",
                cwd=str(pb.directory), progress_bar=progress, execution_timeout=cell_timeout,
                request_save_on_cell_execute=True, kernel_manager_class=_kernel_manager_class(runtime),
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
