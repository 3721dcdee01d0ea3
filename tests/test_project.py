"""Repository-level promises: exports, signatures, README, environment.yml."""

import inspect
import re
import tomllib
from pathlib import Path

import pytest
import yaml

import sparkbooks as sb
import importlib
import pkgutil

REPO = Path(__file__).resolve().parents[1]
MODULES = [importlib.import_module(f"sparkbooks.{m.name}") for m in pkgutil.iter_modules(sb.__path__)
           if not m.name.startswith("_") and m.name != "cli"]


def test_exports_are_sorted_and_real():
    for module in [sb, *MODULES]:
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_public_functions_take_at_most_three_positional_parameters(module):
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            positional = [p for p in inspect.signature(obj).parameters.values()
                          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            assert len(positional) <= 3, f"{module.__name__}.{name}"


def _readme():
    return (REPO / "README.md").read_text()


def test_quick_start_is_exactly_two_commands():
    block = re.search(r"## Quick start.*?```(?:bash|sh)?\n(.*?)```", _readme(), re.S).group(1)
    commands = [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert commands == ["make guides", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_readme_playbook_table_matches_the_notebooks():
    rows = re.findall(r"^\| \[`([a-z0-9-]+)`\]\(playbooks/[^)]+\) \| (.+?) \| (.+?) \| (.+?) \|$", _readme(), re.M)
    table = {slug: (title, minutes, gpu) for slug, title, minutes, gpu in rows}
    expected = {pb.slug: (pb.title, f"{pb.minutes['cpu']} min", pb.hardware["gpu"]) for pb in sb.catalog.discover()}
    assert table == expected


def test_environment_yml_names_the_core_packages_of_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert {"rapidsai", "conda-forge", "nvidia"} <= set(env["channels"])
    conda = {re.split(r"[<>=! ]", d)[0] for d in env["dependencies"] if isinstance(d, str)}
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {"python=3.12", "cudf", "cuml"} <= conda | {d for d in env["dependencies"] if isinstance(d, str)}
    core = {re.split(r"[<>=! \[]", d)[0] for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert core <= conda, f"missing from environment.yml: {core - conda}"
    assert any(p.startswith("-e ..") or p == "-e ." for p in pip)
