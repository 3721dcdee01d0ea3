"""What a DGX Spark installs: a CUDA torch from environment.yml, and pip's aarch64 wheels (a committed lock)."""

import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
import aarch64_wheels  # noqa: E402

#: requirements with no Linux aarch64 wheel for CPython 3.12 in any release: pip builds them from source on a Spark
BUILDS_FROM_SOURCE = {"hdbscan": "hdbscan", "openTSNE": "opentsne"}  # pip name → conda-forge name


def _conda_specs() -> list[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    return [d for d in env["dependencies"] if isinstance(d, str)]


def _matchspec(spec: str) -> tuple[str, str, str]:
    """(name, version, build) of a conda MatchSpec written ``name``, ``name<op>version``, ``name=version=build``
    or ``name[version=…, build=…]``."""
    spec = spec.split("#")[0].strip()
    bracket = re.match(r"^([\w.-]+)\[(.*)\]$", spec)
    if bracket:
        keys = dict(re.findall(r"(\w+)\s*=\s*['\"]?([^,'\"]+)['\"]?", bracket.group(2)))
        return bracket.group(1), keys.get("version", "*"), keys.get("build", "*")
    name = re.match(r"^[\w.-]+", spec).group(0)
    rest = spec[len(name):].strip()
    if rest.startswith("=") and not rest.startswith("=="):
        parts = rest[1:].split("=")
        return name, parts[0] or "*", parts[1] if len(parts) > 1 else "*"
    return name, rest or "*", "*"


def test_matchspec_reads_the_forms_conda_takes():
    assert _matchspec("pytorch>=2.4") == ("pytorch", ">=2.4", "*")
    assert _matchspec("pytorch=*=cuda*  # note") == ("pytorch", "*", "cuda*")
    assert _matchspec("pytorch[version='>=2.8', build='cuda13*']") == ("pytorch", ">=2.8", "cuda13*")
    assert _matchspec("cudf=26.10") == ("cudf", "26.10", "*")


def test_environment_yml_asks_for_a_cuda_torch():
    """A bare `pytorch` may solve to the CPU build: every torch path would then run on the CPU, unreported (issue 52 item 9)."""
    specs = [_matchspec(s) for s in _conda_specs()]
    torch = [s for s in specs if s[0] in ("pytorch", "pytorch-gpu", "pytorch-cpu", "cpuonly")]
    assert torch, "environment.yml must install torch"
    for name, _, build in torch:
        assert name != "pytorch-cpu" and name != "cpuonly", name
        assert name == "pytorch-gpu" or "cuda" in build, f"{name} with build {build!r} may be the CPU build"


def _lock() -> dict:
    return json.loads(aarch64_wheels.LOCK.read_text())


def _name(requirement: str) -> str:
    return re.match(r"^[A-Za-z0-9._-]+", requirement).group(0)


def test_the_aarch64_lock_covers_every_requirement_of_every_cpu_extra():
    """Every requirement pip installs on a Spark from pyproject's core and extras (gpu aside) was checked for a wheel:
    a new or changed requirement needs `python tests/aarch64_wheels.py --write` (issue 52 item 10)."""
    wanted = {r for reqs in aarch64_wheels.requirements().values() for r in reqs if aarch64_wheels.applies_on_aarch64(r)}
    assert set(_lock()["requirements"]) == wanted


def test_every_requirement_has_an_aarch64_wheel_or_a_stated_build():
    missing = {_name(r) for r, found in _lock()["requirements"].items() if found["wheel"] is None}
    assert missing == set(BUILDS_FROM_SOURCE), f"no aarch64 wheel: {sorted(missing)}"
    for requirement, found in _lock()["requirements"].items():
        if found["wheel"] is not None:
            assert found["wheel"].endswith(("-none-any.whl", "_aarch64.whl")), (requirement, found["wheel"])
    conda = {_matchspec(s)[0] for s in _conda_specs()}
    assert {BUILDS_FROM_SOURCE[n] for n in missing} <= conda, "the conda path must bring them prebuilt (conda-forge)"
    # where the README promises the pip command on a Spark, it names what pip compiles there and what that needs
    readme = (REPO / "README.md").read_text()
    paragraphs = [p for p in readme.split("\n\n") if "aarch64" in p and "pip install" in p]
    assert any(all(n in p for n in missing) and "compiler" in p for p in paragraphs), \
        f"README: the pip-on-a-Spark paragraph must say that {sorted(missing)} build from source and need a compiler"


def test_the_lock_matches_the_pinned_versions():
    for requirement, found in _lock()["requirements"].items():
        pinned = re.search(r"==([\w.]+)", requirement.split(";")[0])
        if pinned and found["wheel"] is not None:
            assert found["version"] == pinned.group(1), (requirement, found)


def test_gpu_extra_stays_out_of_the_lock():
    gpu = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    assert not set(gpu) & set(_lock()["requirements"])
