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
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
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


def resolve(requirement: str) -> dict:
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
           "--only-binary=:all:", *platforms, "--python-version", PYTHON, "--implementation", "cp",
           "--target", str(Path(tempfile.gettempdir()) / "sparkbooks-aarch64-dry-run"), "--report", "-",
           requirement.split(";")[0].strip()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return {"wheel": None, "why": (done.stderr.strip().splitlines() or ["pip found none"])[-1]}
    report = json.loads(done.stdout)
    item = report["install"][0]
    url = item["download_info"]["url"]
    return {"wheel": url.rsplit("/", 1)[-1], "version": item["metadata"]["version"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="resolve every requirement and write the lock")
    args = parser.parse_args()
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
    LOCK.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
