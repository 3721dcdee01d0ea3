"""The playbooks on disk: discovery, the ``playbook`` metadata contract, profiles.

Each playbook lives at ``playbooks/<slug>/<slug>.ipynb``. Its notebook metadata holds::

    "playbook": {
      "title": "...", "summary": "one line",
      "minutes": {"cpu": 2, "spark": 1},
      "hardware": {"gpu": "optional|recommended|required", "min_memory_gb": 8},
      "tags": ["..."], "stand_ins": ["SmolLM2-135M-Instruct stands in for ..."],
      "profiles": {"cpu": {}, "spark": {"n_rows": 50000000}},
      "constraints": {"n_rows": {"interval": [1000, null]}},
      "headline": ["result names shown on the index page"],
      "order": 100,
      "accelerators": ["cuml.accel"],
      "claims": [{"name": "...", "metric": "result", "baseline": "result", "compare": "smaller", "test": "exact"}]
    }

``accelerators`` lists the zero-code-change accelerators the notebook's own kernel switches on
when a GPU works (``cudf.pandas``, ``cuml.accel``; default none): :func:`sparkbooks.begin`
installs exactly those, before the notebook imports the libraries they replace.

``claims`` declares the headline claims the run decides with :func:`sparkbooks.claims.claim`
(checked by :func:`sparkbooks.claims.validate_declarations`; the executed run must record each).

The parameters cell is the single source of the parameters; profiles only override them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .accel import ACCELERATORS
from .claims import validate_declarations
from .exceptions import MetadataError, PlaybookNotFoundError
from .hardware import Hardware
from .parameters import Parameter, parse_parameters_cell, validate
from .settings import settings

__all__ = ["Playbook", "ProfileChoice", "discover", "get", "load", "read_notebook"]

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
GPU_NEEDS = ("optional", "recommended", "required")
REQUIRED_PROFILES = ("cpu", "spark")
REQUIRED_PARAMETERS = ("profile", "seed")
# A DGX Station's GB300 has far more memory than a Spark's GB10; anything this large gets `station`.
_STATION_GPU_GIB = 400


@dataclass(frozen=True)
class ProfileChoice:
    """The concrete profile a run uses, and why."""

    profile: str
    reason: str


@dataclass(frozen=True)
class Playbook:
    """One playbook: where it is, what its metadata says, which parameters it declares."""

    slug: str
    path: Path
    title: str
    summary: str
    minutes: dict[str, float]
    hardware: dict[str, Any]
    tags: tuple[str, ...]
    stand_ins: tuple[str, ...]
    profiles: dict[str, dict[str, Any]]
    parameters: dict[str, Parameter]
    headline: tuple[str, ...] = field(default=())
    order: int = 100  # position in listings; start-here is 0
    accelerators: tuple[str, ...] = ()  # cudf.pandas / cuml.accel, switched on by begin() on a working GPU
    claims: tuple[dict[str, Any], ...] = ()  # declared claims: name, metric, baseline, compare, test

    @property
    def directory(self) -> Path:
        return self.path.parent

    def profile_values(self, profile: str) -> dict[str, Any]:
        """The parameter values a named profile sets (``profile`` itself included)."""
        if profile not in self.profiles:
            raise MetadataError(
                f"Playbook {self.slug!r} has no profile {profile!r}. Profiles: {', '.join(self.profiles)}."
            )
        return {**self.profiles[profile], "profile": profile}

    def resolve_profile(self, profile: str, hardware: Hardware, *, accelerator: str | None = None) -> ProfileChoice:
        """Turn ``auto`` into a concrete profile for this machine, with the reason."""
        if profile != "auto":
            return ProfileChoice(profile, "chosen")
        accelerator = accelerator or settings.accelerator
        if accelerator == "cpu":
            return ProfileChoice("cpu", "auto: accelerator=cpu")
        if not hardware.has_nvidia_gpu:
            return ProfileChoice("cpu", "auto: no NVIDIA GPU found")
        mem = hardware.gpu_memory_gib or 0
        if "station" in self.profiles and ("GB300" in hardware.gpus[0].name or mem >= _STATION_GPU_GIB):
            return ProfileChoice("station", f"auto: {hardware.gpus[0].name} with {mem:.0f} GiB")
        return ProfileChoice("spark", f"auto: {hardware.gpus[0].name} found")


def _require(meta: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in meta:
        raise MetadataError(f"{where}: the `playbook` metadata lacks {key!r}.")
    value = meta[key]
    if not isinstance(value, kind):
        raise MetadataError(f"{where}: `playbook.{key}` must be {kind}, got {type(value).__name__}.")
    return value


def read_notebook(path: Path) -> dict[str, Any]:
    """A notebook file as plain JSON (``nbformat`` validation is left to the tools that write notebooks).

    Raises
    ------
    MetadataError
        The file is not a readable notebook.
    """
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{path}: not a readable notebook ({exc}).") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise MetadataError(f"{path}: not a Jupyter notebook (no cell list).")
    return nb


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _parameters_source(nb: Mapping[str, Any]) -> str:
    """Source of the one cell tagged ``parameters``."""
    found = [_source(c) for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(found) != 1:
        raise MetadataError(f"expected exactly one cell tagged 'parameters', found {len(found)}")
    return found[0]


def load(path: Path) -> Playbook:
    """Read a notebook and check its playbook contract.

    Raises
    ------
    MetadataError
        Naming the notebook and what is missing or malformed.
    """
    path = Path(path)
    slug = path.stem
    where = str(path)
    if not SLUG.match(slug) or path.parent.name != slug:
        raise MetadataError(f"{where}: playbooks live at playbooks/<slug>/<slug>.ipynb with a lowercase-hyphen slug.")
    nb = read_notebook(path)
    meta = nb.get("metadata", {}).get("playbook")
    if not isinstance(meta, Mapping):
        raise MetadataError(f"{where}: notebook metadata has no `playbook` block.")
    try:
        source = _parameters_source(nb)
    except MetadataError as exc:
        raise MetadataError(f"{where}: {exc}") from None
    params = parse_parameters_cell(source, constraints=meta.get("constraints"), playbook=slug)
    for name in REQUIRED_PARAMETERS:
        if name not in params:
            raise MetadataError(f"{where}: the parameters cell must declare {name!r}.")
    profiles = _require(meta, "profiles", Mapping, where)
    for name in REQUIRED_PROFILES:
        if name not in profiles:
            raise MetadataError(f"{where}: `playbook.profiles` must define {name!r}.")
    if "auto" in profiles:
        raise MetadataError(f"{where}: 'auto' is not a profile name; it means 'choose from the hardware'.")
    profile_param = params["profile"]
    if profile_param.default != "auto" or profile_param.type != "str":
        raise MetadataError(f"{where}: declare `profile: str = \"auto\"`.")
    params["profile"] = Parameter(
        "profile", "str", "auto", profile_param.help, choices=("auto", *profiles)
    )
    for name, values in profiles.items():
        if "profile" in values:
            raise MetadataError(f"{where}: profile {name!r} must not set 'profile'.")
        try:
            validate(values, params, playbook=slug)
        except Exception as exc:
            raise MetadataError(f"{where}: profile {name!r} is invalid: {exc}") from None
    hardware = _require(meta, "hardware", Mapping, where)
    if hardware.get("gpu") not in GPU_NEEDS:
        raise MetadataError(f"{where}: `playbook.hardware.gpu` must be one of {', '.join(GPU_NEEDS)}.")
    minutes = _require(meta, "minutes", Mapping, where)
    if "cpu" not in minutes:
        raise MetadataError(f"{where}: `playbook.minutes` needs at least the 'cpu' estimate.")
    headline = tuple(meta.get("headline", ()))
    accelerators = tuple(meta.get("accelerators", ()))
    unknown = sorted(set(accelerators) - set(ACCELERATORS))
    if unknown:
        raise MetadataError(f"{where}: `playbook.accelerators` names {', '.join(unknown)}; known: {', '.join(ACCELERATORS)}.")
    return Playbook(
        slug=slug, path=path,
        title=_require(meta, "title", str, where),
        summary=_require(meta, "summary", str, where),
        minutes=dict(minutes), hardware=dict(hardware),
        tags=tuple(_require(meta, "tags", list, where)),
        stand_ins=tuple(_require(meta, "stand_ins", list, where)),
        profiles={k: dict(v) for k, v in profiles.items()},
        parameters=params, headline=headline, order=int(meta.get("order", 100)), accelerators=accelerators,
        claims=tuple(validate_declarations(meta.get("claims", []), where=where)),
    )


@functools.lru_cache(maxsize=32)
def _load_cached(path: Path, mtime_ns: int) -> Playbook:
    return load(path)


def discover(root: Path | None = None) -> list[Playbook]:
    """All playbooks under ``root`` (default ``settings.playbooks_dir``), by ``order`` then slug."""
    root = Path(root or settings.playbooks_dir).resolve()
    paths = sorted(p for p in root.glob("*/*.ipynb") if p.parent.name == p.stem)
    return sorted((_load_cached(p, p.stat().st_mtime_ns) for p in paths), key=lambda pb: (pb.order, pb.slug))


def get(slug: str, *, root: Path | None = None) -> Playbook:
    """The playbook named ``slug``; an unknown slug lists the valid ones."""
    books = {b.slug: b for b in discover(root)}
    if slug not in books:
        raise PlaybookNotFoundError(
            f"No playbook named {slug!r}. Playbooks: {', '.join(books) or '(none found under ' + str(root or settings.playbooks_dir) + ')'}."
        )
    return books[slug]
