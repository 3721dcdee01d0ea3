"""Settings: read from the environment on first use, validated, refused with the accepted values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkbooks.exceptions import ParameterError
from sparkbooks.settings import Settings


def test_environment_is_read_on_first_use_not_at_import(monkeypatch):
    fresh = Settings()
    monkeypatch.setenv("SPARKBOOKS_ACCELERATOR", "cpu")
    monkeypatch.setenv("SPARKBOOKS_VERBOSITY", "debug")
    monkeypatch.setenv("SPARKBOOKS_CACHE", "~/somewhere")
    assert fresh.accelerator == "cpu" and fresh.verbosity == 2
    assert fresh.cache_dir == Path("~/somewhere").expanduser()


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("SPARKBOOKS_ACCELERATOR", "tpu", "must be one of 'auto', 'gpu', 'cpu'. Got 'tpu'"),
    ("SPARKBOOKS_VERBOSITY", "loud", "must be 0, 1 or 2 (or quiet, normal, debug). Got 'loud'"),
])
def test_bad_environment_values_name_the_variable_and_the_choices(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ParameterError, match=variable) as info:
        Settings().validate()
    assert expected in str(info.value)


def test_assignment_is_validated_and_wins_over_the_environment(monkeypatch):
    fresh = Settings()
    monkeypatch.setenv("SPARKBOOKS_ACCELERATOR", "gpu")
    fresh.accelerator = "cpu"
    assert fresh.accelerator == "cpu"
    with pytest.raises(ParameterError, match="'verbosity' setting must be"):
        fresh.verbosity = 7
    with pytest.raises(ParameterError, match="no setting 'colour'"):
        fresh.colour = "green"
    fresh.reset()
    assert fresh.accelerator == "gpu"


@pytest.mark.parametrize(("variable", "value"), [("SPARKBOOKS_VERBOSITY", "loud"), ("SPARKBOOKS_ACCELERATOR", "tpu")])
def test_cli_exits_2_with_the_reason_instead_of_a_traceback(variable, value):
    env = {"PATH": "/usr/bin:/bin", variable: value}
    done = subprocess.run([sys.executable, "-m", "sparkbooks.cli", "list"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("ParameterError:") and variable in done.stderr and "Traceback" not in done.stderr


def test_cli_accepts_the_documented_names():
    env = {"PATH": "/usr/bin:/bin", "SPARKBOOKS_VERBOSITY": "debug"}
    done = subprocess.run([sys.executable, "-m", "sparkbooks.cli", "list"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0 and "start-here" in done.stdout


def _cli(*args: str, **variables: str) -> subprocess.CompletedProcess:
    """The CLI in an environment of only PATH (and PYTHONPATH, if set) plus ``variables``: no stray SPARKBOOKS_*."""
    env = {"PATH": "/usr/bin:/bin", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}, **variables}
    return subprocess.run([sys.executable, "-m", "sparkbooks.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.parametrize("command", [
    ["list"], ["show", "start-here"], ["render", "--site", "{tmp}/site", "--out", "{tmp}/runs"],
    ["run", "start-here", "--out", "{tmp}/runs"], ["build", "--out", "{tmp}/runs", "--site", "{tmp}/site"],
    ["clean", "start-here", "--from-run", "--out", "{tmp}/runs"],
], ids=lambda c: c[0])
def test_every_command_refuses_a_bad_setting_before_doing_anything(command, tmp_path):
    done = _cli(*(a.format(tmp=tmp_path) for a in command), SPARKBOOKS_ACCELERATOR="banana")
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("ParameterError: The 'accelerator' setting (environment variable SPARKBOOKS_ACCELERATOR) "
                           "must be one of 'auto', 'gpu', 'cpu'. Got 'banana' instead.\n")
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("SPARKBOOKS_ACCELERATER", "cpu", "There is no setting SPARKBOOKS_ACCELERATER (environment variable). "
                                      "Did you mean SPARKBOOKS_ACCELERATOR?"),
    ("SPARKBOOKS_LLAMA_SERVER", "/no/such/llama-server", "SPARKBOOKS_LLAMA_SERVER must be an executable file"),
    ("SPARKBOOKS_FIND_LINKS", "/no/such/folder", "SPARKBOOKS_FIND_LINKS must be an existing folder"),
    ("SPARKBOOKS_REQUIRE_BROWSER", "yes", "SPARKBOOKS_REQUIRE_BROWSER must be '0' or '1'. Got 'yes' instead."),
    ("SPARKBOOKS_HOME", "/", "'home' setting (environment variable SPARKBOOKS_HOME) must be a folder that holds playbooks/"),
    ("SPARKBOOKS_CACHE", "/etc/hostname", "'cache_dir' setting (environment variable SPARKBOOKS_CACHE) must be a folder"),
])
def test_every_sparkbooks_variable_is_checked_and_an_unknown_one_is_named(variable, value, expected):
    done = _cli("list", **{variable: value})
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.startswith("ParameterError: ") and expected in done.stderr, done.stderr


def test_every_sparkbooks_variable_the_code_reads_is_known_to_the_settings():
    import importlib
    import re

    module = importlib.import_module("sparkbooks.settings")  # `sparkbooks.settings` the attribute is the object

    package = Path(module.__file__).parent
    read = {name for path in package.rglob("*.py") for name in re.findall(r"\b(SPARKBOOKS_[A-Z_]+)\b", path.read_text())}
    markers = {"SPARKBOOKS_RESULT", "SPARKBOOKS_PROBE"}  # stdout line prefixes, not variables
    assert read - markers - set(module._ENV.values()) - set(module._OTHER_ENV) == set()


def test_empty_and_documented_variables_are_accepted(tmp_path):
    done = _cli("list", SPARKBOOKS_FIND_LINKS="", SPARKBOOKS_REQUIRE_BROWSER="1", SPARKBOOKS_CACHE=str(tmp_path / "new"))
    assert done.returncode == 0 and "start-here" in done.stdout, done.stderr
