"""One typed settings object: where things live and which accelerator to prefer.

Environment overrides, read once at import:

``SPARKBOOKS_HOME``         repository root holding ``playbooks/`` (default: the checkout this package lives in)
``SPARKBOOKS_CACHE``        download cache (default ``~/.cache/sparkbooks``)
``SPARKBOOKS_ACCELERATOR``  ``auto`` (default), ``gpu`` (fail if no working GPU) or ``cpu`` (never touch the GPU)
``SPARKBOOKS_VERBOSITY``    ``0`` quiet, ``1`` normal (default), ``2`` debug
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from .exceptions import ParameterError

__all__ = ["Accelerator", "Settings", "settings"]

Accelerator = Literal["auto", "gpu", "cpu"]
_ACCELERATORS = get_args(Accelerator)


def _default_home() -> Path:
    env = os.environ.get("SPARKBOOKS_HOME")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "playbooks").is_dir():
        return checkout
    return Path.cwd()


def _default_cache() -> Path:
    env = os.environ.get("SPARKBOOKS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sparkbooks"


@dataclass
class Settings:
    """Directories, verbosity and accelerator preference, validated on assignment."""

    home: Path = field(default_factory=_default_home)
    cache_dir: Path = field(default_factory=_default_cache)
    accelerator: Accelerator = field(default_factory=lambda: os.environ.get("SPARKBOOKS_ACCELERATOR", "auto"))  # type: ignore[assignment]
    verbosity: int = field(default_factory=lambda: int(os.environ.get("SPARKBOOKS_VERBOSITY", "1")))

    def __setattr__(self, name: str, value: object) -> None:
        if name == "accelerator" and value not in _ACCELERATORS:
            raise ParameterError(
                f"The 'accelerator' setting must be one of {', '.join(map(repr, _ACCELERATORS))}. Got {value!r} instead."
            )
        if name == "verbosity" and value not in (0, 1, 2):
            raise ParameterError(f"The 'verbosity' setting must be 0, 1 or 2. Got {value!r} instead.")
        if name in ("home", "cache_dir"):
            value = Path(value).expanduser()  # type: ignore[arg-type]
        super().__setattr__(name, value)

    @property
    def playbooks_dir(self) -> Path:
        return self.home / "playbooks"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def site_dir(self) -> Path:
        return self.home / "site"

    @property
    def templates_dir(self) -> Path:
        return self.home / "nbconvert_templates"


settings = Settings()
