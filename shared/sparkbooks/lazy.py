"""Submodules loaded on first use, so that importing a package stays light.

>>> __getattr__, __dir__ = attach(__name__, ("cvar", "portfolio"))  # in a package's ``__init__``
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

__all__ = ["LazyHooks", "attach"]


class LazyHooks(NamedTuple):
    """The two module-level hooks a lazy package assigns: ``__getattr__, __dir__ = attach(...)``."""

    getattr: Callable[[str], Any]
    dir: Callable[[], list[str]]


def attach(package: str, submodules: Iterable[str], *, namespace: dict[str, Any] | None = None) -> LazyHooks:
    """Module-level ``__getattr__`` and ``__dir__`` that import ``package.<name>`` the first time it is read.

    ``namespace`` (the package's ``globals()``) caches the loaded module, so the hook runs once per name.
    """
    names = tuple(submodules)

    def __getattr__(name: str) -> Any:
        if name in names:
            module = importlib.import_module(f"{package}.{name}")
            if namespace is not None:
                namespace[name] = module
            return module
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace or ()) | set(names))

    return LazyHooks(__getattr__, __dir__)
