"""Timed logging: ``start = info("loading")`` … ``info("finished ({time_passed})", time=start)``."""

from __future__ import annotations

import sys
import threading
import time as _time
from collections.abc import Iterator
from contextlib import contextmanager

from .settings import settings

__all__ = ["debug", "format_seconds", "heartbeat", "info", "progress", "warning"]


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
