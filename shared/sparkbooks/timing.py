"""Per-step wall times, one helper for every playbook: which step took how long, on which backend.

>>> watch = Stopwatch()
>>> with watch.step("parse", backend="cpu"):
...     _ = sum(range(1000))
>>> list(watch.seconds), watch.backends["parse"]
(['parse'], 'cpu')

GPU work is asynchronous: pass ``sync`` (e.g. ``torch.cuda.synchronize`` or cupy's device
synchronise) and it runs before each clock read, so a step's time includes the kernels it queued.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["Stopwatch"]

T = TypeVar("T")


class Stopwatch:
    """Collects ``seconds[step]`` (and ``backends[step]``: what actually ran it) for a sequence of steps.

    A step timed twice keeps the sum, so a loop can time its body under one name.
    """

    def __init__(self, *, sync: Callable[[], Any] | None = None) -> None:
        self.sync = sync
        self.seconds: dict[str, float] = {}
        self.backends: dict[str, str] = {}

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return time.perf_counter()

    @contextmanager
    def step(self, name: str, *, backend: str | None = None) -> Iterator[None]:
        """Time the ``with`` block as step ``name``; a step that raises is not recorded."""
        start = self._now()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + self._now() - start
        if backend is not None:
            self.backends[name] = backend

    def call(self, name: str, fn: Callable[..., T], *args: Any, backend: str | None = None, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` timed as step ``name``; returns its result."""
        with self.step(name, backend=backend):
            return fn(*args, **kwargs)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def table(self, *, total: bool = True):
        """A DataFrame: one row per step with ``seconds`` (and ``backend`` when recorded), plus a total row."""
        import pandas as pd  # noqa: PLC0415

        frame = pd.DataFrame({"seconds": self.seconds}).rename_axis("step")
        if self.backends:
            frame["backend"] = pd.Series(self.backends)
        if total:
            frame.loc["total", "seconds"] = self.total
        return frame.round({"seconds": 3})
