"""One typed settings object: where things live, how much to say, which accelerator to prefer.

Each setting is read from its environment variable on first use (not at import), validated,
and refused with the accepted values when it is wrong — ``sparkbooks`` then exits with code 2:

``SPARKBOOKS_HOME``         repository root holding ``playbooks/`` (default: the checkout this package lives in)
``SPARKBOOKS_CACHE``        download cache (default ``~/.cache/sparkbooks``)
``SPARKBOOKS_ACCELERATOR``  ``auto`` (default), ``gpu`` (fail if no working GPU) or ``cpu`` (never touch the GPU)
``SPARKBOOKS_VERBOSITY``    ``0``/``quiet``, ``1``/``normal`` (default), ``2``/``debug``

Assigning a value (``settings.accelerator = "cpu"``) validates it the same way and wins over
the environment.

Other ``SPARKBOOKS_*`` variables are read where they are used, and :meth:`Settings.validate` (which
the CLI calls first, whatever the command) checks them too, as well as refusing a name it does not
know — a misspelt variable would otherwise be ignored without a word:

``SPARKBOOKS_LLAMA_SERVER``   an executable ``llama-server`` to use instead of building one
``SPARKBOOKS_FIND_LINKS``     a folder of downloaded packages for ``pip`` instead of the registry
``SPARKBOOKS_REQUIRE_BROWSER`` ``1``: the rendered-site test fails, rather than skips, without Chromium
``SPARKBOOKS_PLAYBOOK``, ``_RESULTS``, ``_PARAMS_RESOLVED``, ``_PROFILE_REASON``, ``_DIST_BACKEND``,
``_DIST_TIMEOUT``: set by sparkbooks for the kernels and workers it starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

from .exceptions import ParameterError

__all__ = ["Accelerator", "Settings", "settings"]

Accelerator = Literal["auto", "gpu", "cpu"]
_ACCELERATORS = get_args(Accelerator)
_VERBOSITY = {"0": 0, "quiet": 0, "1": 1, "normal": 1, "2": 2, "debug": 2}
_ENV = {"home": "SPARKBOOKS_HOME", "cache_dir": "SPARKBOOKS_CACHE", "accelerator": "SPARKBOOKS_ACCELERATOR",
        "verbosity": "SPARKBOOKS_VERBOSITY"}
_PREFIX = "SPARKBOOKS_"


def _executable(value: str) -> bool:
    return os.path.isfile(value) and os.access(value, os.X_OK)


def _positive_number(value: str) -> bool:
    try:
        return float(value) > 0
    except ValueError:
        return False


#: The other variables: name → (what it must be, check). Read by the modules that use them; checked by validate().
_OTHER_ENV: dict[str, tuple[str, Callable[[str], bool]]] = {
    "SPARKBOOKS_LLAMA_SERVER": ("an executable file (a llama-server binary)", _executable),
    "SPARKBOOKS_FIND_LINKS": ("an existing folder (of downloaded packages)", os.path.isdir),
    "SPARKBOOKS_REQUIRE_BROWSER": ("'0' or '1'", lambda v: v in ("0", "1")),
    # set by sparkbooks itself for the processes it starts: a kernel, a torchrun worker
    "SPARKBOOKS_PLAYBOOK": ("a playbook slug", bool),
    "SPARKBOOKS_RESULTS": ("a file path", bool),
    "SPARKBOOKS_PARAMS_RESOLVED": ("'0' or '1'", lambda v: v in ("0", "1")),
    "SPARKBOOKS_PROFILE_REASON": ("a sentence", lambda v: True),
    "SPARKBOOKS_DIST_BACKEND": ("'gloo' or 'nccl'", lambda v: v in ("gloo", "nccl")),
    "SPARKBOOKS_DIST_TIMEOUT": ("a number of seconds > 0", _positive_number),
}


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


def _home(value: Any, where: str) -> Path:
    path = Path(value).expanduser().resolve()
    if not (path / "playbooks").is_dir():
        raise ParameterError(f"The 'home' setting{where} must be a folder that holds playbooks/ (a checkout of this "
                             f"repository). Got {str(value)!r} instead.")
    return path


def _cache_dir(value: Any, where: str) -> Path:
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ParameterError(f"The 'cache_dir' setting{where} must be a folder (created when missing), not a file. "
                             f"Got {str(value)!r} instead.")
    return path


def _verbosity(value: Any, where: str) -> int:
    key = str(value).strip().lower() if not isinstance(value, bool) else ""
    if key not in _VERBOSITY:
        raise ParameterError(f"The 'verbosity' setting{where} must be 0, 1 or 2 (or quiet, normal, debug). "
                             f"Got {value!r} instead.")
    return _VERBOSITY[key]


class Settings:
    """Directories, verbosity and accelerator preference; environment read lazily, values validated."""

    _CHECKS = {"accelerator": _accelerator, "verbosity": _verbosity, "home": _home, "cache_dir": _cache_dir}
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
        """Check every ``SPARKBOOKS_*`` environment variable now, so a bad one fails up front (the CLI does this).

        Raises
        ------
        ParameterError
            A setting's value is not accepted (the message says what is), or a ``SPARKBOOKS_*`` name is unknown.
        """
        for name in self._CHECKS:
            self._get(name)
        known = [*_ENV.values(), *_OTHER_ENV]
        for variable, value in sorted(os.environ.items()):
            if not variable.startswith(_PREFIX) or variable in _ENV.values() or value == "":  # empty: as if unset
                continue
            if variable not in _OTHER_ENV:
                import difflib  # noqa: PLC0415 - only for this message

                close = difflib.get_close_matches(variable, known, n=1)
                hint = f" Did you mean {close[0]}?" if close else ""
                raise ParameterError(f"There is no setting {variable} (environment variable).{hint} Unset it or correct "
                                     f"its name; settings: {', '.join(known)}.")
            what, check = _OTHER_ENV[variable]
            if not check(value):
                raise ParameterError(f"The environment variable {variable} must be {what}. Got {value!r} instead.")

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
