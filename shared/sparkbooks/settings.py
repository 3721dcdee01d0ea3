"""One typed settings object: where things live, how much to say, which accelerator to prefer.

Each setting is read from its environment variable on first use (not at import), validated,
and refused with the accepted values when it is wrong — ``sparkbooks`` then exits with code 2:

``SPARKBOOKS_HOME``         repository root holding ``playbooks/`` (default: the checkout this package lives in)
``SPARKBOOKS_CACHE``        download cache (default ``~/.cache/sparkbooks``)
``SPARKBOOKS_ACCELERATOR``  ``auto`` (default), ``gpu`` (fail if no working GPU) or ``cpu`` (never touch the GPU)
``SPARKBOOKS_VERBOSITY``    ``0``/``quiet``, ``1``/``normal`` (default), ``2``/``debug``

Assigning a value (``settings.accelerator = "cpu"``) validates it the same way and wins over
the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

from .exceptions import ParameterError

__all__ = ["Accelerator", "Settings", "settings"]

Accelerator = Literal["auto", "gpu", "cpu"]
_ACCELERATORS = get_args(Accelerator)
_VERBOSITY = {"0": 0, "quiet": 0, "1": 1, "normal": 1, "2": 2, "debug": 2}
_ENV = {"home": "SPARKBOOKS_HOME", "cache_dir": "SPARKBOOKS_CACHE", "accelerator": "SPARKBOOKS_ACCELERATOR",
        "verbosity": "SPARKBOOKS_VERBOSITY"}


def _default_home() -> Path:
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "playbooks").is_dir() else Path.cwd()


def _default_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sparkbooks"


def _accelerator(value: Any, where: str) -> str:
    if value not in _ACCELERATORS:
        raise ParameterError(f"The 'accelerator' setting{where} must be one of "
                             f"{', '.join(map(repr, _ACCELERATORS))}. Got {value!r} instead.")
    return value


def _verbosity(value: Any, where: str) -> int:
    key = str(value).strip().lower() if not isinstance(value, bool) else ""
    if key not in _VERBOSITY:
        raise ParameterError(f"The 'verbosity' setting{where} must be 0, 1 or 2 (or quiet, normal, debug). "
                             f"Got {value!r} instead.")
    return _VERBOSITY[key]


class Settings:
    """Directories, verbosity and accelerator preference; environment read lazily, values validated."""

    _CHECKS = {"accelerator": _accelerator, "verbosity": _verbosity,
               "home": lambda v, where: Path(v).expanduser().resolve(),
               "cache_dir": lambda v, where: Path(v).expanduser()}
    _DEFAULTS = {"accelerator": lambda: "auto", "verbosity": lambda: 1, "home": _default_home, "cache_dir": _default_cache}

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})

    def _get(self, name: str) -> Any:
        values = self._values
        if name not in values:
            raw = os.environ.get(_ENV[name])
            values[name] = (self._CHECKS[name](raw, f" (environment variable {_ENV[name]})") if raw not in (None, "")
                            else self._DEFAULTS[name]())
        return values[name]

    def __setattr__(self, name: str, value: object) -> None:
        if name not in self._CHECKS:
            raise ParameterError(f"There is no setting {name!r}. Settings: {', '.join(self._CHECKS)}.")
        self._values[name] = self._CHECKS[name](value, "")

    def reset(self) -> None:
        """Forget assigned values: the next read takes the environment again."""
        self._values.clear()

    def validate(self) -> None:
        """Read every setting now, so a bad environment variable fails up front (the CLI does this)."""
        for name in self._CHECKS:
            self._get(name)

    home: Path = property(lambda self: self._get("home"))  # type: ignore[assignment]
    cache_dir: Path = property(lambda self: self._get("cache_dir"))  # type: ignore[assignment]
    accelerator: Accelerator = property(lambda self: self._get("accelerator"))  # type: ignore[assignment]
    verbosity: int = property(lambda self: self._get("verbosity"))  # type: ignore[assignment]

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

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{n}={self._get(n)!r}" for n in self._CHECKS) + ")"


settings = Settings()
