"""Repository-level promises: exports, signatures, README, environment.yml."""

import inspect
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import sparkbooks as sb
import importlib
import pkgutil

REPO = Path(__file__).resolve().parents[1]
MODULES = [importlib.import_module(m.name) for m in pkgutil.walk_packages(sb.__path__, "sparkbooks.")
           if not m.name.rsplit(".", 1)[-1].startswith("_") and m.name != "sparkbooks.cli"]


def test_exports_are_sorted_and_real():
    for module in [sb, *MODULES]:
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def _public_callables(module):
    """Public functions of ``module``, and the public methods of its public classes."""
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
        elif inspect.isclass(obj) and obj.__module__.startswith("sparkbooks"):
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and not attr.startswith("_"):
                    yield f"{module.__name__}.{name}.{attr}", member


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_public_functions_take_at_most_three_positional_parameters(module):
    for qualname, fn in _public_callables(module):
        positional = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]
        assert len(positional) <= 3, qualname


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_public_functions_return_named_results_not_tuples(module):
    """Positional tuples read badly (``result[2]``): return a dataclass or a DataFrame instead."""
    for qualname, fn in _public_callables(module):
        returns = inspect.signature(fn).return_annotation
        text = returns if isinstance(returns, str) else getattr(returns, "__name__", str(returns))
        assert not str(text).lower().startswith(("tuple", "typing.tuple")), f"{qualname} returns {text}"
        doc = inspect.getdoc(fn) or ""
        assert "Returns ``(" not in doc and "returns ``(" not in doc, f"{qualname} documents a tuple return"


def test_the_shape_check_would_catch_a_tuple():
    def bad(x: int) -> tuple[int, int]:
        return x, x

    module = type(sys)("fake")
    module.__name__, module.__all__, module.bad = "fake", ["bad"], bad
    with pytest.raises(AssertionError, match="returns tuple"):
        test_public_functions_return_named_results_not_tuples(module)


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


def _environment():
    return yaml.safe_load((REPO / "environment.yml").read_text())


def test_environment_yml_names_the_core_packages_of_pyproject():
    env = _environment()
    assert {"rapidsai", "conda-forge", "nvidia"} <= set(env["channels"])
    conda = {re.split(r"[<>=! ]", d)[0] for d in env["dependencies"] if isinstance(d, str)}
    assert {"python", "cudf", "cuml"} <= conda
    core = {re.split(r"[<>=! \[]", d)[0] for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert core <= conda, f"missing from environment.yml: {core - conda}"


def test_environment_yml_local_paths_resolve_as_conda_resolves_them():
    # conda writes the pip section to a requirements file beside environment.yml and runs pip from that folder
    pip = next(d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict))
    local = [line.split(maxsplit=1)[1] for line in pip if line.startswith(("-e ", "--editable "))]
    local += [line for line in pip if line.startswith((".", "/"))]
    assert local, "environment.yml must install this repository"
    for path in local:
        target = (REPO / path).resolve()
        assert (target / "pyproject.toml").is_file() and 'name = "sparkbooks"' in (target / "pyproject.toml").read_text(), \
            f"{path!r} in environment.yml resolves to {target}, not this repository"


#: conda package → pip distribution for the RAPIDS libraries both files name
_CONDA_TO_PIP = {"cudf": "cudf-cu13", "cuml": "cuml-cu13", "cuopt": "cuopt-cu13", "cugraph": "cugraph-cu13",
                 "nx-cugraph": "nx-cugraph-cu13"}


def test_pip_gpu_extra_and_environment_yml_pin_the_same_releases():
    env = _environment()
    conda = dict(re.match(r"([\w-]+)=([\d.]+)", d).groups() for d in env["dependencies"]
                 if isinstance(d, str) and re.match(r"([\w-]+)=([\d.]+)$", d.split("#")[0].strip()))
    gpu = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    pinned = [d for d in gpu if d.split("==")[0] in _CONDA_TO_PIP.values()]  # cupy's range is cudf's, not conda's pin
    extra = dict(re.match(r"([\w-]+)==([\d.]+)(?:\.\*)?$", d).groups() for d in pinned)
    for name, pip_name in _CONDA_TO_PIP.items():
        assert name in conda and pip_name in extra, (name, pip_name)
        assert extra[pip_name] == conda[name], f"{pip_name} {extra[pip_name]} vs conda {name} {conda[name]}"
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    rsc = [line.split("#")[0].strip() for line in pip_section if line.startswith("rapids-singlecell")]
    assert rsc == [next(d for d in gpu if d.startswith("rapids-singlecell"))], "rapids-singlecell differs"


def test_umap_and_hdbscan_stay_within_what_cuml_accel_supports():
    topics = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["topics"]
    env = [d for d in _environment()["dependencies"] if isinstance(d, str)]
    for spec in ("umap-learn>=0.5.7,<0.5.13", "hdbscan>=0.8.40,<0.8.45"):
        assert spec in topics and any(d.startswith(spec) for d in env), spec


_SKIPS = {
    "test_skips.py": """
import pytest

def test_runs():
    pass

@pytest.mark.gpu
def test_needs_a_gpu():
    pass

@pytest.mark.skip(reason="needs the RAPIDS wheels (make gpu-contract)")
def test_listed():
    pass

def test_unlisted():
    pytest.skip("cvxpy is not installed")
""",
    "test_missing_extra.py": "import pytest\n\npytest.importorskip('no_such_module_here')\n",
}


def _pytest_with_our_skip_policy(tmp_path, files, *, ci: bool):
    for name, text in _SKIPS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import (pytest_addoption, pytest_collection_modifyitems, pytest_collectreport,\n"
        "    pytest_runtest_makereport, pytest_sessionfinish, pytest_terminal_summary)\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(REPO)} | ({"CI": "true"} if ci else {})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *files], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_ci_fails_a_skip_whose_reason_is_not_listed(tmp_path):
    listed = _pytest_with_our_skip_policy(tmp_path, ["test_skips.py", "-k", "not unlisted"], ci=True)
    assert listed.returncode == 0 and "1 passed, 2 skipped" in listed.stdout, listed.stdout
    # under pytest-xdist as `make test` runs the unit tests: the workers' reports reach the controller's policy
    unlisted = _pytest_with_our_skip_policy(tmp_path, ["-n", "2", "test_skips.py"], ci=True)
    assert unlisted.returncode == 1, unlisted.stdout
    assert "FAILED test_skips.py::test_unlisted" in unlisted.stdout and "'cvxpy is not installed'" in unlisted.stdout
    assert "1 failed, 1 passed, 2 skipped" in unlisted.stdout
    # a whole file skipped at collection (a module-level importorskip) fails the run too
    module = _pytest_with_our_skip_policy(tmp_path, ["-n", "2", "test_missing_extra.py"], ci=True)
    assert module.returncode == 1 and "test_missing_extra.py: could not import 'no_such_module_here'" in module.stdout
    # outside CI the same skips are skips
    local = _pytest_with_our_skip_policy(tmp_path, ["test_skips.py", "test_missing_extra.py"], ci=False)
    assert local.returncode == 0 and "1 passed, 4 skipped" in local.stdout, local.stdout


def test_every_test_dependency_is_in_the_test_extra():
    """A reference test needs its peer installed in CI (`make test` installs the `test` extra), not only in `bench`:
    cvxpy + CLARABEL for tests/test_cvar.py and the portfolio benchmark's smoke run, BERTopic for the topic one's."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    test = {re.split(r"[<>=!\[ ;]", d)[0] for d in extras["test"]}
    assert {"cvxpy", "clarabel", "bertopic"} <= test


#: (slug, profile) pairs whose stated minutes a GPU run measured (none yet: no machine that ran these has had a GPU)
MEASURED_ON_GPU: set[tuple[str, str]] = set()
NOT_MEASURED = "not measured"


def test_profile_minutes_other_than_cpu_are_not_measured_yet():
    """A guide states a GPU time only once a GPU run measured it; the cpu time is a number, checked by every run."""
    for pb in sb.catalog.discover():
        assert isinstance(pb.minutes["cpu"], (int, float)) and pb.minutes["cpu"] > 0, pb.slug
        for profile, minutes in pb.minutes.items():
            if profile == "cpu":
                continue
            if (pb.slug, profile) in MEASURED_ON_GPU:
                assert isinstance(minutes, (int, float)) and minutes > 0, (pb.slug, profile)
            else:
                assert minutes == NOT_MEASURED, f"{pb.slug}: minutes.{profile} = {minutes!r}, never measured on a GPU"


def test_a_subprocess_a_test_leaks_fails_the_run(tmp_path):
    """The guard behind every `with Popen(...)`: pytest's unraisable-exception check, an error under this project's
    `filterwarnings = error`. A child left running with an open pipe is reported where the garbage collector finds it."""
    (tmp_path / "test_leaky.py").write_text(
        "import gc, subprocess, sys\n\n"
        "def test_leaks_a_child():\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(5)'], stdout=subprocess.PIPE)\n\n"
        "def test_after_it():\n"
        "    gc.collect()\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path),
                           "-p", "no:cacheprovider", str(tmp_path / "test_leaky.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "is still running" in done.stdout and "ResourceWarning" in done.stdout, done.stdout[-2000:]


def test_the_playbook_session_collects_every_file_that_marks_a_test_slow():
    # `make test`'s second session lists its files (collecting all ~1,900 tests costs ≈ 40 s): a slow test in a file
    # missing from the list would never run
    makefile = (REPO / "Makefile").read_text()
    listed = re.search(r"^SLOW_TESTS := ((?:.*\\\n)*.*)$", makefile, re.M)
    assert listed, "the Makefile has no SLOW_TESTS list"
    files = set(listed.group(1).replace("\\\n", " ").split())
    marking = {f"tests/{p.name}" for p in (REPO / "tests").glob("test_*.py") if re.search(r"mark\.slow\b", p.read_text())}
    assert files == marking, f"missing: {sorted(marking - files)}, not marking slow: {sorted(files - marking)}"
    assert "-m slow $(SLOW_TESTS)" in makefile
