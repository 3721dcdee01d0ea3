"""Runs that leave nothing behind and never overlap: the run lock, the kernel's private runtime folder, leftovers.

One run of a playbook into one folder at a time (:func:`run_lock`, an advisory ``flock`` the kernel drops when
its holder dies). The kernel's IPC sockets and connection file live in a private runtime folder
(:func:`kernel_runtime_dir`), removed when the run ends by any means short of SIGKILL; what a killed run left
(that folder, its staging folder, sockets an older version put in the playbook's folder) the next run removes
(:func:`remove_leftovers`), under the lock.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .exceptions import RunLockedError

__all__ = ["environ", "kernel_manager_class", "kernel_runtime", "kernel_runtime_dir", "remove_leftovers", "run_lock"]

_OWNER = "owner.pid"  # in a kernel runtime folder: the process whose run it serves


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """These environment variables set inside the block, the old values back after it."""
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


def remove_leftovers(slug: str, dest: Path, playbook_dir: Path) -> None:
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
def kernel_runtime(slug: str, dest: Path) -> Iterator[Path]:
    """A fresh private runtime folder for one run's kernel, removed on every way out of the block."""
    path = _private_dir(kernel_runtime_dir(slug, dest))
    try:
        (path / _OWNER).write_text(str(os.getpid()))
        if path.parent == kernel_runtime_dir(slug, dest).parent:
            _sweep_orphans(path.parent)
        with environ(JUPYTER_RUNTIME_DIR=str(path)):
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def kernel_manager_class(runtime: Path):
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
