"""Timed logging: ``start = info("loading")`` … ``info("finished ({time_passed})", time=start)``."""

from __future__ import annotations

import os
import sys
import threading
import time as _time
from collections.abc import Iterator
from contextlib import contextmanager

from .settings import settings

__all__ = ["debug", "format_seconds", "heartbeat", "info", "progress", "terminal", "warning"]


def format_seconds(seconds: float) -> str:
    """Human-readable duration: ``0.042 s``, ``3.1 s``, ``2 min 5 s``."""
    if seconds < 1:
        return f"{seconds:.3f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def _emit(level: int, msg: str, time: float | None) -> float:
    now = _time.perf_counter()
    if time is not None:
        msg = msg.format(time_passed=format_seconds(now - time))
    if settings.verbosity >= level:
        print(msg, file=sys.stderr if level == 0 else sys.stdout, flush=True)
    return now


def info(msg: str, *, time: float | None = None) -> float:
    """Print ``msg`` (``{time_passed}`` filled from ``time``) and return a start time."""
    return _emit(1, msg, time)


def terminal(msg: str, *, time: float | None = None) -> float:
    """:func:`info`, and inside a playbook's kernel also on the terminal of ``sparkbooks run``.

    A kernel's ``sys.stderr`` goes into the cell's output, which the CLI shows only when the cell ends;
    the kernel process's own stderr (``sys.__stderr__``) is the terminal's. Lines a user must see while a
    cell waits — node 0 waiting for node 1, with the command to type there — go to both.
    """
    if time is not None:
        msg = msg.format(time_passed=format_seconds(_time.perf_counter() - time))
    now = info(msg)
    if (os.environ.get("SPARKBOOKS_PLAYBOOK") and sys.__stderr__ is not None and sys.stderr is not sys.__stderr__
            and settings.verbosity >= 1):
        print(f"[{os.environ['SPARKBOOKS_PLAYBOOK']}] {msg}", file=sys.__stderr__, flush=True)
    return now


def debug(msg: str, *, time: float | None = None) -> float:
    return _emit(2, msg, time)


def warning(msg: str, *, time: float | None = None) -> float:
    return _emit(0, f"warning: {msg}", time)


@contextmanager
def heartbeat(what: str, *, every: float = 10.0) -> Iterator[None]:
    """Print ``what … still running (N s)`` every ``every`` seconds until the block ends: no silent minute."""
    done = threading.Event()
    start = _time.perf_counter()

    def beat() -> None:
        while not done.wait(every):
            info(f"  {what} … still running ({format_seconds(_time.perf_counter() - start)})")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def progress(what: str, fraction: float, *, started: float) -> None:
    """One progress line: share done, time elapsed since ``started`` and a linear estimate of what is left."""
    elapsed = _time.perf_counter() - started
    left = elapsed * (1 - fraction) / fraction if fraction > 0.02 else None
    tail = f", about {format_seconds(left)} left" if left is not None else ""
    info(f"  {what}: {fraction:.0%} ({format_seconds(elapsed)} elapsed{tail})")
