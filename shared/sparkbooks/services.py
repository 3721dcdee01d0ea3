"""One lifecycle for every local service: a server (llama-server, a Milvus server) or a process group (a torchrun job).

A :class:`Service` is started, health-checked, logged and stopped the same way whatever it runs:

* **start**: a free loopback port when it needs one, the process in its own session (a notebook
  interrupt does not reach it), stdout and stderr to a log file, then a health wait bounded by
  ``startup_timeout`` — a process that exits or never becomes healthy raises
  :class:`~sparkbooks.exceptions.ServiceStartError` carrying the last lines of its log;
* **stop**: SIGTERM to the whole process group, SIGKILL after a grace period — on leaving the
  ``with`` block, when the Python process exits (``atexit``), and on Linux when the parent dies
  without running either (``PR_SET_PDEATHSIG``, e.g. a killed Jupyter kernel).

Subclasses say what to run (:meth:`Service.command`) and how to tell it is ready
(:meth:`Service.healthy`); :func:`http_ok` covers HTTP health endpoints. Use one ``with`` block,
or :meth:`sparkbooks.session.Session.use` to keep a service for the rest of a notebook.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from . import log
from .exceptions import ServiceExitError, ServiceStartError

__all__ = ["Service", "free_port", "http_ok", "live_services"]

#: Started and not yet stopped: strong references, so that a service whose object the caller dropped is still
#: stopped at exit (and its process not left to the garbage collector's "subprocess … is still running").
_LIVE: set[Service] = set()
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_ok(url: str, *, timeout: float = 1.0) -> bool:
    """Whether ``url`` answers HTTP 200 (anything else, or no answer, is ``False``)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up once in this (parent) process; ``None`` off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # the C library already loaded into this process
    prctl.argtypes, prctl.restype = [ctypes.c_int, ctypes.c_ulong], ctypes.c_int
    return prctl


def _die_with_parent_hook() -> Callable[[], None] | None:
    """The ``preexec_fn`` that makes the child get SIGKILL when its parent dies, or ``None`` off Linux.

    Everything is resolved here, in the parent: between fork and exec the child only calls the
    function pointer it inherited — no library loading or symbol lookup, which Python documents
    as unsafe in ``preexec_fn`` when threads exist (a Jupyter kernel with torch has them).
    """
    prctl = _prctl()
    if prctl is None:
        return None
    # SIGKILL, not SIGTERM: with the parent gone nobody waits for a graceful shutdown, and a
    # server mid-shutdown must not linger (seen once in CI after a killed Jupyter kernel).
    option, sig = _PR_SET_PDEATHSIG, int(signal.SIGKILL)
    return lambda: prctl(option, sig)


def live_services() -> list[Service]:
    """Services started by this process and not yet stopped."""
    return [s for s in _LIVE if s.running]


@atexit.register
def _stop_all() -> None:
    for service in list(_LIVE):
        service.stop()


class Service:
    """A local process with a start → healthy → stop lifecycle; subclass and define :meth:`command`.

    Parameters
    ----------
    name
        What the log lines and errors call it (``llama-server``, ``torchrun``…).
    startup_timeout
        Seconds :meth:`start` waits for :meth:`healthy`.
    env
        Extra environment variables for the process.
    cwd
        Working directory of the process.
    """

    def __init__(self, name: str, *, startup_timeout: float = 120.0, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name, self.startup_timeout = name, startup_timeout
        self.env, self.cwd = dict(env or {}), cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.startup_s: float | None = None

    # --- what a subclass defines -----------------------------------------------------------------
    def command(self) -> Sequence[str]:
        """The command line to run; called once per :meth:`start`, after :meth:`prepare`."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Resolve what :meth:`command` needs (a binary, a port) just before starting."""

    def healthy(self) -> bool:
        """Whether the running process is ready for use; the default is "it has started"."""
        return True

    def describe(self) -> str:
        """A short phrase for log lines, e.g. ``on 127.0.0.1:8080 with model.gguf``."""
        return ""

    # --- the lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def start(self) -> Service:
        """Start the process and wait until :meth:`healthy` (at most ``startup_timeout`` seconds).

        Raises
        ------
        ServiceStartError
            The process exited during start-up, or did not become healthy in time; the message
            carries the last lines of its log.
        """
        if self.running:
            return self
        self.prepare()
        fd, log_name = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
        self.log_path = Path(log_name)
        start = log.info(f"starting {self.name} {self.describe()}".rstrip())
        env = {**os.environ, **self.env} if self.env else None
        preexec = _die_with_parent_hook()  # resolved here, before the fork
        with os.fdopen(fd, "wb") as log_file:
            self.process = subprocess.Popen(list(self.command()), stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, preexec_fn=preexec,
                                            start_new_session=True, env=env, cwd=self.cwd)
        _LIVE.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - start
        log.info(f"{self.name} ready (pid {self.pid}, {{time_passed}})", time=start)
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceStartError(f"{self.name} exited with code {self.process.returncode} while starting:\n"
                                        f"{self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise ServiceStartError(f"{self.name} did not become ready within {self.startup_timeout:.0f} s "
                                f"{self.describe()}:\n{self.log_tail()}")

    def wait(self, *, timeout: float | None = None) -> int:
        """Wait for the process to end by itself (a job); return its exit code.

        Raises
        ------
        ServiceExitError
            It exited non-zero; or it was still running after ``timeout`` seconds (then it is stopped).
        """
        if self.process is None:
            raise ServiceExitError(f"{self.name} was never started.")
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ServiceExitError(f"{self.name} was still running after {timeout:.0f} s and was stopped:\n"
                                   f"{self.log_tail()}") from None
        _LIVE.discard(self)
        if code != 0:
            raise ServiceExitError(f"{self.name} exited with code {code}:\n{self.log_tail()}")
        return code

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after ``timeout`` seconds; safe to call twice."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait(timeout=timeout)
        if proc is not None:
            self._signal(signal.SIGKILL)  # children left in the group (a job's workers) go too
        _LIVE.discard(self)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)  # type: ignore[union-attr]
        except (ProcessLookupError, PermissionError):
            pass

    def rss_bytes(self, *, peak: bool = False) -> int:
        """Resident memory of the main process (``VmHWM`` when ``peak``), from ``/proc``.

        Raises
        ------
        ServiceExitError
            The process is not running.
        """
        if not self.running:
            raise ServiceExitError(f"{self.name} is not running: no memory to measure.")
        key = "VmHWM:" if peak else "VmRSS:"
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        raise ServiceExitError(f"/proc/{self.pid}/status has no {key} line")

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the process's output."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        return f"{type(self).__name__}({self.name!r}, {state})"
