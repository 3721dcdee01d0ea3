"""Shared fixtures: a private runs/site area, a fixture playbook home, opt-in markers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import sparkbooks as sb
from sparkbooks import runner
from sparkbooks.render import render_site

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
collect_ignore_glob = ["fixtures/*"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--gpu", action="store_true", help="run tests that need a working NVIDIA GPU with RAPIDS")
    parser.addoption("--network", action="store_true", help="run tests that download from PyPI")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for flag in ("gpu", "network"):
        if config.getoption(f"--{flag}"):
            continue
        skip = pytest.mark.skip(reason=f"needs --{flag}")
        for item in items:
            if flag in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every playbook run once on its ``cpu`` profile, and the site rendered from those runs."""
    root = tmp_path_factory.mktemp("build")
    runs, site = root / "runs", root / "site"
    servers_before = llama_server_pids()
    for pb in sb.catalog.discover():
        runner.run(pb.slug, profile="cpu", out=runs, progress=False)
    render_site(runs=runs, site=site)
    return {"runs": runs, "site": site, "servers_before": servers_before}


def llama_server_pids() -> set[int]:
    """PIDs of running llama-server processes (to spot ones a run left behind)."""
    pids = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"llama-server" in cmdline.read_bytes().split(b"\0")[0]:
                pids.add(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def fixture_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository-like home holding only the failure-mode fixture playbook."""
    home = tmp_path / "home"
    shutil.copytree(FIXTURES, home / "playbooks")
    (home / "nbconvert_templates").symlink_to(REPO / "nbconvert_templates")
    monkeypatch.setattr(sb.settings, "home", home)
    monkeypatch.setenv("SPARKBOOKS_HOME", str(home))
    return home


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setattr(sb.settings, "cache_dir", path)
    return path


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
