"""Settings: read from the environment on first use, validated, refused with the accepted values."""

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
    done = subprocess.run([sys.executable, "-m", "sparkbooks.cli", "list"], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("ParameterError:") and variable in done.stderr and "Traceback" not in done.stderr


def test_cli_accepts_the_documented_names():
    env = {"PATH": "/usr/bin:/bin", "SPARKBOOKS_VERBOSITY": "debug"}
    done = subprocess.run([sys.executable, "-m", "sparkbooks.cli", "list"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "start-here" in done.stdout
