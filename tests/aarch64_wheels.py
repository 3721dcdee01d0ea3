"""Which of the package's pip requirements install on a DGX Spark's Arm CPU from a wheel, recorded as a lock.

``python tests/aarch64_wheels.py --write`` asks pip, for every requirement of the core and of each extra except
``gpu`` (whose RAPIDS wheels the README lists), what it would install on a DGX Spark (Linux aarch64, glibc 2.39
under DGX OS 7, CPython 3.12) with wheels only::

    pip install --dry-run --no-deps --ignore-installed --only-binary=:all: --platform manylinux2014_aarch64 \\
        --platform manylinux_2_17_aarch64 … --platform manylinux_2_39_aarch64 \\
        --python-version 3.12 --implementation cp --target TMP --report - REQUIREMENT

and writes ``tests/aarch64_wheels.json``: the wheel pip picked (name, version, file), or ``null`` where no release
in the range has one (pip would then build the sdist on the Spark). ``tests/test_environment.py`` checks the lock
against pyproject.toml on every commit, without the network.

Then it resolves all of them together *with* their dependencies, as ``pip install -e '.[every extra but gpu]'``
would on the Spark, and records every package of that resolution under ``"installs"`` (name → version, wheel):
a dependency of a dependency without an aarch64 wheel would be built from source just the same. The requirements
that have no wheel (``hdbscan``, ``openTSNE``) enter that resolution as local placeholder wheels carrying their real
``Requires-Dist`` (read from the installed sdist build), so their own dependencies are checked too; they are marked
``"placeholder": true``. ``tests/test_aarch64_wheels.py`` checks every entry is a wheel for aarch64 or pure Python.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = Path(__file__).with_name("aarch64_wheels.json")
#: DGX OS 7 is Ubuntu 24.04 (glibc 2.39): every manylinux tag up to 2.39 installs there; CPython 3.12
GLIBC = 39
PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, GLIBC + 1)))
PYTHON = "3.12"


def requirements() -> dict[str, list[str]]:
    """Every requirement of the core (``"core"``) and of each extra but ``gpu``, by group."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"core": list(project["dependencies"])}
    groups |= {name: list(reqs) for name, reqs in project["optional-dependencies"].items() if name != "gpu"}
    return groups


def applies_on_aarch64(requirement: str) -> bool:
    """False for requirements whose environment marker excludes Linux aarch64 (e.g. ``platform_machine == 'x86_64'``)."""
    marker = requirement.split(";", 1)[1] if ";" in requirement else ""
    return not re.search(r"platform_machine\s*==\s*['\"]x86_64['\"]", marker)


def _pip(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """``pip install --dry-run`` for a Spark (aarch64, CPython 3.12, wheels only) with ``args``, its report on stdout."""
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--only-binary=:all:", *platforms, "--python-version", PYTHON, "--implementation", "cp",
           "--target", str(Path(tempfile.gettempdir()) / "sparkbooks-aarch64-dry-run"), "--report", "-", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def resolve(requirement: str) -> dict:
    done = _pip("--no-deps", requirement.split(";")[0].strip(), timeout=300)
    if done.returncode != 0:
        return {"wheel": None, "why": (done.stderr.strip().splitlines() or ["pip found none"])[-1]}
    report = json.loads(done.stdout)
    item = report["install"][0]
    url = item["download_info"]["url"]
    return {"wheel": url.rsplit("/", 1)[-1], "version": item["metadata"]["version"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="resolve every requirement and write the lock")
    parser.add_argument("--together-only", action="store_true",
                        help="keep the lock's per-requirement answers; redo only the resolution with dependencies")
    args = parser.parse_args()
    if args.together_only:
        lock = json.loads(LOCK.read_text())
        lock["installs"] = resolve_together(lock["requirements"])
        LOCK.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
        return 0
    if not args.write:
        parser.print_help()
        return 0
    lock = {"platforms": f"manylinux2014 and manylinux_2_17 … 2_{GLIBC} aarch64", "python": PYTHON, "requirements": {}}
    for group, reqs in requirements().items():
        for requirement in reqs:
            if not applies_on_aarch64(requirement) or requirement in lock["requirements"]:
                continue
            found = resolve(requirement)
            found["groups"] = [g for g, rs in requirements().items() if requirement in rs]
            lock["requirements"][requirement] = found
            print(f"{requirement:50} {found.get('wheel') or 'NO WHEEL: ' + found['why']}", flush=True)
    lock["installs"] = resolve_together(lock["requirements"])
    print(f"{len(lock['installs'])} packages in the resolution with dependencies", flush=True)
    LOCK.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    return 0


def _placeholder_wheel(folder: Path, name: str, version: str, requires: list[str]) -> str:
    """A wheel for ``name==version`` with nothing in it but its metadata (``requires``): a stand-in for an sdist."""
    dist = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    files = {f"{dist}.dist-info/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
             + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: sparkbooks\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
                     f"{len(text.encode())}\n" for path, text in files.items()) + f"{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return f"{name}=={version}"


def resolve_together(found: dict[str, dict]) -> dict[str, dict]:
    """Every package pip installs on a Spark for all the requirements at once, dependencies included.

    A requirement without an aarch64 wheel enters as a placeholder wheel of the version installed here (it must
    satisfy the requirement), carrying that version's ``Requires-Dist``, so its own dependencies are resolved too.
    """
    from packaging.requirements import Requirement  # noqa: PLC0415  (pip's own dependency)
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="sparkbooks-placeholders-") as scratch:
        folder, wanted, placeholders = Path(scratch), [], set()
        for requirement, entry in found.items():
            spec = Requirement(requirement.split(";")[0].strip())
            if entry["wheel"] is not None:
                wanted.append(str(spec))
                continue
            version = importlib.metadata.version(spec.name)
            if version not in spec.specifier:
                raise SystemExit(f"{spec.name} {version} installed here does not satisfy {spec}: install one that does")
            requires = [r for r in importlib.metadata.requires(spec.name) or [] if "extra ==" not in r]
            wanted.append(_placeholder_wheel(folder, spec.name, version, requires))
            placeholders.add(canonicalize_name(spec.name))
        done = _pip("--find-links", str(folder), *wanted, timeout=1800)
    if done.returncode != 0:
        raise SystemExit("pip could not resolve the requirements together for aarch64:\n" + done.stderr[-3000:])
    installs = {}
    for item in json.loads(done.stdout)["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        installs[name] = {"version": item["metadata"]["version"], "wheel": item["download_info"]["url"].rsplit("/", 1)[-1],
                          "placeholder": name in placeholders}
    return dict(sorted(installs.items()))


if __name__ == "__main__":
    raise SystemExit(main())
