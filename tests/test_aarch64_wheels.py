"""On a DGX Spark's Arm CPU, pip installs every package — dependencies of dependencies included — from a wheel,
except the two stated builds (issue 52 item 10). Read from the committed lock; no network."""

import json
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).parent))
import aarch64_wheels  # noqa: E402

LOCK = json.loads(aarch64_wheels.LOCK.read_text())


def _direct() -> dict[str, Requirement]:
    return {canonicalize_name(Requirement(r.split(";")[0]).name): Requirement(r.split(";")[0])
            for r in LOCK["requirements"]}


def test_the_lock_resolves_dependencies_not_only_the_listed_requirements():
    """`--no-deps` alone checked 57 names; pip installs every dependency of them too, on the Spark as here."""
    installs = LOCK.get("installs")
    assert installs, "run `python tests/aarch64_wheels.py --write` (or --together-only): no resolution with dependencies"
    assert len(installs) > len(LOCK["requirements"])  # dependencies came in
    for name, requirement in _direct().items():
        assert name in installs, f"{name} is a requirement but not in the resolution"
        assert requirement.specifier.contains(installs[name]["version"], prereleases=True), (requirement, installs[name])


def _installs_on_a_spark(tag) -> bool:
    """A wheel tag CPython 3.12 on Linux aarch64 accepts: pure Python, or built for aarch64 and 3.12 (or abi3)."""
    if tag.platform == "any":
        return tag.interpreter.startswith(("py3", "cp3"))
    if not tag.platform.endswith("_aarch64"):
        return False
    if tag.abi == "abi3":
        return tag.interpreter.startswith("cp3") and int(tag.interpreter[3:]) <= 12
    return tag.interpreter in ("cp312", "py3")


def test_every_package_pip_installs_on_a_spark_is_an_aarch64_or_pure_python_wheel():
    for name, entry in LOCK["installs"].items():
        if entry["placeholder"]:
            continue
        wheel_name, version, _, tags = parse_wheel_filename(entry["wheel"])
        assert wheel_name == name and version == Version(entry["version"]), (name, entry)
        assert any(map(_installs_on_a_spark, tags)), f"{name}: {entry['wheel']} does not install on a Spark"


def test_only_the_stated_builds_stand_in_as_placeholders():
    """The placeholders are exactly the requirements without an aarch64 wheel, and what they need was resolved."""
    placeholders = {n for n, e in LOCK["installs"].items() if e["placeholder"]}
    no_wheel = {canonicalize_name(Requirement(r.split(";")[0]).name) for r, e in LOCK["requirements"].items()
                if e["wheel"] is None}
    assert placeholders == no_wheel == {"hdbscan", "opentsne"}
    for needed in ("numpy", "scipy", "scikit-learn", "joblib"):  # hdbscan's and openTSNE's own Requires-Dist
        assert needed in LOCK["installs"] and not LOCK["installs"][needed]["placeholder"]
    assert all(re.fullmatch(r"[a-z0-9-]+", n) for n in LOCK["installs"])  # canonical names, one entry each
