"""The two calls every playbook makes: :func:`begin` after its parameters, :func:`record` per result.

When ``sparkbooks run`` executes a notebook it tells the kernel, through environment
variables, which playbook it is (``SPARKBOOKS_PLAYBOOK``), where results go
(``SPARKBOOKS_RESULTS``) and that the profile was already applied
(``SPARKBOOKS_PARAMS_RESOLVED``). Opened by hand in JupyterLab none of these are set:
the playbook is found from the working directory and the profile is applied here.
"""

from __future__ import annotations

import atexit
import math
import os
import random
from collections.abc import MutableMapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from . import catalog, devices
from .accel import AccelStatus, enable
from .devices import Devices
from .exceptions import InputError, ParameterError, SessionError
from .fileio import write_json_atomic
from .hardware import Hardware, detect
from .parameters import validate

__all__ = ["Result", "Session", "active", "begin", "current", "record"]

T = TypeVar("T")

ENV_PLAYBOOK = "SPARKBOOKS_PLAYBOOK"
ENV_RESULTS = "SPARKBOOKS_RESULTS"
ENV_RESOLVED = "SPARKBOOKS_PARAMS_RESOLVED"
ENV_PROFILE_REASON = "SPARKBOOKS_PROFILE_REASON"


@dataclass
class Result:
    """One measured figure."""

    name: str
    value: float | int | str | bool
    unit: str = ""
    note: str = ""


@dataclass
class Session:
    """What :func:`begin` established: playbook, parameters, profile, hardware, devices and path."""

    playbook: catalog.Playbook
    params: dict[str, Any]
    profile: str
    profile_reason: str
    hardware: Hardware
    accel: AccelStatus
    started: str
    results: dict[str, Result] = field(default_factory=dict)
    results_path: Path | None = None
    devices: Devices | None = None
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    _services: ExitStack = field(default_factory=ExitStack, repr=False)

    @property
    def on_gpu(self) -> bool:
        """Whether this session switched on the GPU path (the probe passed and acceleration is on)."""
        return self.accel.on_gpu

    @property
    def stand_ins(self) -> tuple[str, ...]:
        """What stands in for the real thing in this run: the playbook's stand-ins, on every profile.

        A larger profile (``spark``) changes sizes, not what the guide runs on (topic naming without a
        ``base_url``, the 135M baseline, simulated cells and stocks are still used there), so none is dropped.
        """
        return tuple(self.playbook.stand_ins)

    def work_dir(self) -> Path:
        """A folder for this run's large outputs (adapters, checkpoints, models), created on first call.

        Under ``sparkbooks run`` it sits beside ``results.json`` (``work/``); opened by hand, in the
        cache (``<cache>/work/<playbook>``), never inside the repository.
        """
        from .settings import settings  # noqa: PLC0415

        if self.results_path is not None:
            folder = self.results_path.parent / "work"
        else:
            folder = Path(settings.cache_dir) / "work" / self.playbook.slug
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def use(self, service: T) -> T:
        """Enter ``service`` (a :class:`~sparkbooks.services.Service` or any context manager) for the rest of the session.

        It is stopped when the session closes: when the kernel exits, or when the notebook is run
        again from the top (:func:`begin` closes the previous session), so re-running cells never
        leaves a second server behind. Returns what entering it returned.
        """
        return self._services.enter_context(service)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop every service this session uses (see :meth:`use`), newest first."""
        self._services.close()

    def banner(self) -> str:
        pb = self.playbook
        lines = [
            f"sparkbooks · {pb.title} ({pb.slug})",
            f"  machine : {self.hardware.summary()}",
            f"  devices : {(self.devices or devices.probe()).summary()}",
            f"  path    : {self.accel.describe()}",
            f"  profile : {self.profile} ({self.profile_reason})",
        ]
        lines += [f"  stand-in: {s}" for s in self.stand_ins]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook.slug,
            "title": self.playbook.title,
            "profile": self.profile,
            "profile_reason": self.profile_reason,
            "params": self.params,
            "machine": self.hardware.summary(),
            "hardware": self.hardware.to_dict(),
            "path": self.accel.path,
            "path_detail": self.accel.describe(),
            "devices": (self.devices or devices.probe()).to_dict(),
            "stand_ins": list(self.stand_ins),
            "started": self.started,
            "results": [vars(r) for r in self.results.values()],
            "claims": list(self.claims.values()),
        }

    def save(self) -> None:
        if self.results_path is not None:
            write_json_atomic(self.results_path, self.to_dict())


_current: Session | None = None


def _infer_slug() -> str:
    env = os.environ.get(ENV_PLAYBOOK)
    if env:
        return env
    cwd = Path.cwd()
    if (cwd / f"{cwd.name}.ipynb").exists():
        return cwd.name
    raise SessionError(
        "Cannot tell which playbook this is: pass it, e.g. `sparkbooks.begin(globals(), playbook='start-here')`, "
        "or start the notebook from its own folder."
    )


def begin(namespace: MutableMapping[str, Any], *, playbook: str | None = None) -> Session:
    """Validate the parameters in ``namespace``, detect the machine and its devices, switch on acceleration, print a banner.

    Parameters
    ----------
    namespace
        The notebook's ``globals()``, holding the values of the parameters cell. Profile
        values are written back into it when the profile is applied here.
    playbook
        The playbook slug; found from ``sparkbooks run`` or the working directory when omitted.

    Returns
    -------
    Session
        Also kept as :func:`current` for :func:`record`.

    Raises
    ------
    ParameterError
        A parameter is missing from the namespace or breaks its declaration.
    AcceleratorUnavailableError
        ``SPARKBOOKS_ACCELERATOR=gpu`` and no GPU operation works.
    """
    global _current
    if _current is not None:
        _current.close()  # the notebook runs again from the top: stop what the last run started
    pb = catalog.get(playbook or _infer_slug())
    missing = [n for n in pb.parameters if n not in namespace]
    if missing:
        raise ParameterError(f"Parameters {', '.join(missing)} are not defined: run the parameters cell first.")
    values = {n: namespace[n] for n in pb.parameters}
    values = validate(values, pb.parameters, playbook=pb.slug)
    hardware = detect()
    requested = values["profile"]
    choice = pb.resolve_profile(requested, hardware)
    profile, reason = choice.profile, os.environ.get(ENV_PROFILE_REASON) or choice.reason
    if os.environ.get(ENV_RESOLVED) != "1":
        # Opened by hand: apply the profile to every parameter the user left at its default.
        for name, value in pb.profile_values(profile).items():
            if name == "profile" or values[name] == pb.parameters[name].default:
                values[name] = namespace[name] = value
    namespace["profile"] = values["profile"] = profile
    accel = enable(accelerators=pb.accelerators)
    report = devices.probe()
    seed = values["seed"]
    random.seed(seed)
    import numpy as np  # noqa: PLC0415 - kept out of `import sparkbooks`

    np.random.seed(seed)  # legacy global state, for libraries that still draw from it
    results_path = os.environ.get(ENV_RESULTS)
    _current = Session(
        playbook=pb, params=values, profile=profile, profile_reason=reason, hardware=hardware, accel=accel,
        devices=report, started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        results_path=Path(results_path) if results_path else None,
    )
    _current.save()
    print(_current.banner())
    return _current


def current() -> Session:
    """The session :func:`begin` started; raises :class:`~sparkbooks.exceptions.SessionError` when there is none."""
    if _current is None:
        raise SessionError("No playbook session: call `sparkbooks.begin(globals())` after the parameters cell.")
    return _current


def active() -> Session | None:
    """The session :func:`begin` started, or ``None`` outside a playbook (library use, tests, benchmarks)."""
    return _current


@atexit.register
def _close_current() -> None:
    if _current is not None:
        _current.close()


def record(name: str, value: float | int | str | bool, *, unit: str = "", note: str = "") -> float | int | str | bool:
    """Record a measured result for the guide's results table and ``results.json``.

    Returns ``value`` so a call can sit inside an expression. Non-finite numbers are refused:
    a result that did not happen is not recorded.
    """
    session = current()
    if not isinstance(value, (int, float, str, bool)):
        try:
            value = value.item()  # numpy scalars
        except AttributeError:
            raise InputError(f"record({name!r}, …) takes a number, string or bool, not {type(value).__name__}.") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"record({name!r}, …) got {value!r}: only finite numbers are results.")
    session.results[name] = Result(name, value, unit, note)
    session.save()
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    print(f"recorded {name} = {shown}{(' ' + unit) if unit else ''}")
    return value
