"""Shared fixtures: a private runs/site area, a fixture playbook home, opt-in markers, the CI skip policy."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import signal
import subprocess
import sys
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


#: why an opt-in marker's test is skipped without its flag
OPT_IN = {"gpu": "needs --gpu (a working NVIDIA GPU with RAPIDS)", "network": "needs --network (a package registry)"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for flag, reason in OPT_IN.items():
        if config.getoption(f"--{flag}"):
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if flag in item.keywords:
                item.add_marker(skip)


# ---- No silent skip in CI -------------------------------------------------------------------------------------------
# In CI (CI=true) a skip is allowed only for a reason listed here, and only where that reason is true of the machine;
# any other skip — a missing extra, an unlisted environment condition — fails the run. Reasons are matched exactly.

def _has_nvidia_gpu() -> bool:
    return sb.hardware.detect().has_nvidia_gpu


def _milvus_wheel_exists() -> bool:
    return platform.machine() == "x86_64" and platform.system() == "Linux"


ALLOWED_CI_SKIPS = {
    OPT_IN["gpu"]: lambda: not _has_nvidia_gpu(),  # no NVIDIA GPU here; where there is one, CI passes --gpu
    OPT_IN["network"]: lambda: True,  # CI never downloads from a registry while testing
    "needs the RAPIDS wheels (make gpu-contract)": lambda: True,  # ≈ 5 GB; `make gpu-contract` installs them
    "a working GPU selects rapids-singlecell when installed": _has_nvidia_gpu,
    "this machine has a GPU Warp can use": _has_nvidia_gpu,
    # torchao is left out on purpose (transformers imports it, with warnings, in every process once present)
    "needs torchao (`pip install torchao`; not a dependency: transformers imports it in every process)":
        lambda: importlib.util.find_spec("torchao") is None,
    "the milvus wheel (a Milvus standalone server) exists for x86-64 Linux only": lambda: not _milvus_wheel_exists(),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def unlisted_skip(report: pytest.CollectReport | pytest.TestReport) -> str | None:
    """The reason of a skip CI does not allow, or ``None`` (not a skip, an xfail, or a listed reason that holds here)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    reason = _skip_reason(report)
    allowed = ALLOWED_CI_SKIPS.get(reason)
    return None if allowed is not None and allowed() else reason


_UNLISTED_SKIPS: list[tuple[str, str]] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if in_ci() and (reason := unlisted_skip(report)) is not None:
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI (CI=true) for a reason that is not listed in tests/conftest.py's "
                           f"ALLOWED_CI_SKIPS: {reason!r}. Install what it needs, or make the reason precise and list it.")
    return report


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # a module-level importorskip skips a whole file at collection: counted here, failing the session at its end
    if in_ci() and (reason := unlisted_skip(report)) is not None:
        _UNLISTED_SKIPS.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _UNLISTED_SKIPS and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _SESSION_RUNS:  # what each playbook cost this session, beside the minutes its guide promises
        terminalreporter.section("playbook runs (cpu profile)")
        stated = {pb.slug: pb.minutes.get("cpu") for pb in sb.catalog.discover()}
        total = 0.0
        for slug, outcome in _SESSION_RUNS[0]._outcomes.items():
            if isinstance(outcome, str):
                terminalreporter.line(f"{slug:<18} failed")
                continue
            total += outcome.seconds
            terminalreporter.line(f"{slug:<18} {outcome.seconds:7.1f} s   (guide states {stated.get(slug)} min)")
            for claim in _claims_of(outcome):  # the run's headlines: what a reader of the CI log can check
                terminalreporter.line(f"    {claim['verdict']:<13} {claim['name']}: {claim['value']} vs "
                                      f"{claim['baseline']} {claim['baseline_value']} ({claim['evidence']})")
        terminalreporter.line(f"{'all':<18} {total:7.1f} s")
    if _UNLISTED_SKIPS:
        terminalreporter.section("files skipped in CI for a reason that is not listed (the run fails)", red=True)
        for nodeid, reason in _UNLISTED_SKIPS:
            terminalreporter.line(f"{nodeid}: {reason}")


# ---- Each playbook executed once, on first request, in its own `sparkbooks run` process ---------------------------
# Its own process: the tests' monkeypatched settings and environment cannot leak into a run, and a run's failure is
# that playbook's alone. Tried and dropped: running the playbooks in the background beside the other tests. On 2 cores
# both halves are CPU-bound, so the session took as long (a fresh clone's pytest 35 min against 34) and each run's
# recorded seconds no longer meant what its guide promises (start-here 153 s against a 135 s limit).

#: the session's PlaybookRuns (at most one), for the cost table in the terminal summary
_SESSION_RUNS: list["PlaybookRuns"] = []
#: the environment variable that marks a run's processes (a llama-server it started inherits it)
RUN_TAG = "SB_TEST_PLAYBOOK_RUN"  # not SPARKBOOKS_*: the CLI refuses unknown settings


def _claims_of(outcome: runner.RunResult) -> list[dict]:
    import json  # noqa: PLC0415

    try:
        return json.loads(outcome.results.read_text()).get("claims", []) if outcome.results else []
    except (OSError, ValueError):
        return []


def _stopped_with_the_session():
    """A ``preexec_fn`` that sends the run SIGTERM (a run's own "stopped" path) if this pytest dies first, even by
    SIGKILL, so no playbook goes on running for a session that is gone; ``None`` off Linux. ``prctl`` is resolved
    here, in the parent (see :mod:`sparkbooks.services`)."""
    from sparkbooks import services  # noqa: PLC0415

    prctl = services._prctl()  # noqa: SLF001 - the one place libc's prctl is resolved
    return None if prctl is None else (lambda: prctl(1, int(signal.SIGTERM)))  # 1 = PR_SET_PDEATHSIG


class PlaybookFailed(Exception):
    """A playbook's cpu run failed; raised for that playbook's tests only."""


class PlaybookRuns:
    """The session's playbook runs: each playbook executed at most once, on first request, in its own
    ``sparkbooks run`` process. A failed run is reported to that playbook's tests only; the other playbooks still run.
    """

    def __init__(self, root: Path) -> None:
        _SESSION_RUNS.append(self)
        self.runs, self.site = root / "runs", root / "site"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)  # the session's environment as it started, before any test changed it
        self.servers_left: dict[str, set[int]] = {}  # llama-servers of each run still alive when its process ended
        self._outcomes: dict[str, runner.RunResult | str] = {}

    def __call__(self, slug: str) -> Path:
        """``runs/<slug>`` of a good cpu run of ``slug``.

        Raises
        ------
        PlaybookFailed
            Naming the playbook and its error, each time one of its tests asks.
        """
        outcome = self.outcome(slug)
        if isinstance(outcome, str):
            raise PlaybookFailed(outcome)
        return self.runs / slug

    def outcome(self, slug: str) -> runner.RunResult | str:
        """The run's result, or the message of its failure (running it first if it never ran this session)."""
        if slug not in self._outcomes:
            self._outcomes[slug] = self._execute(slug)
        return self._outcomes[slug]

    def _execute(self, slug: str) -> runner.RunResult | str:
        """One cpu run of ``slug`` in a child process that dies with this session (its stop path: SIGTERM)."""
        log = self.runs / f"{slug}.log"
        try:
            env = self.env | {RUN_TAG: self.tag(slug)}
            cmd = [sys.executable, "-m", "sparkbooks.cli", "run", slug, "--profile", "cpu", "--out", str(self.runs),
                   "--no-progress"]
            with log.open("wb") as sink:
                code = subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=REPO, check=False,
                                      preexec_fn=_stopped_with_the_session()).returncode
            self.servers_left[slug] = llama_server_pids(tag=self.tag(slug))
            return self._read(slug, code, log)
        except Exception as exc:  # noqa: BLE001 - any failure belongs to this playbook alone
            return f"playbook {slug!r} could not be run: {type(exc).__name__}: {exc}"

    def _read(self, slug: str, code: int, log: Path) -> runner.RunResult | str:
        run_json = self.runs / slug / "run.json"
        if code == 0 and run_json.is_file():
            import json  # noqa: PLC0415

            run = json.loads(run_json.read_text())
            results = self.runs / slug / "results.json"
            return runner.RunResult(slug=slug, status=run["status"], notebook=self.runs / slug / f"{slug}.ipynb",
                                    results=results if results.is_file() else None, seconds=run["seconds"],
                                    profile=run["profile"])
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-15:])
        return f"playbook {slug!r} failed on its cpu profile (exit {code}; log {log}):\n{tail}"

    @staticmethod
    def tag(slug: str) -> str:
        """This session's mark on the run of ``slug``: another session (a second checkout's tests) has its own."""
        return f"{slug}:{os.getpid()}"

    @property
    def attempted(self) -> list[str]:
        return list(self._outcomes)

    def render(self) -> Path:
        """The site for whichever playbooks ran (good or failed); the index lists every playbook."""
        return render_site(runs=self.runs, site=self.site)  # a playbook that never ran gets no page, only its row


@pytest.fixture(scope="session")
def playbook_runs(tmp_path_factory: pytest.TempPathFactory) -> PlaybookRuns:
    """Call it with a slug: that playbook's ``runs/<slug>`` folder, executed once per session."""
    return PlaybookRuns(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="session")
def executed(playbook_runs: PlaybookRuns) -> dict[str, Path]:
    """Every playbook run once on its ``cpu`` profile, and the site rendered from whichever ran.

    A failed playbook does not stop the others; its own tests report it (``test_playbook_runs[slug]``).
    """
    for pb in sb.catalog.discover():
        playbook_runs.outcome(pb.slug)
    playbook_runs.render()
    return {"runs": playbook_runs.runs, "site": playbook_runs.site}


def llama_server_pids(tag: str | None = None) -> set[int]:
    """PIDs of running llama-server processes; with ``tag``, only those started under that playbook's run (they
    inherit its :data:`RUN_TAG`), so a server a test started beside the run is not counted as the run's."""
    pids = set()
    marker = f"{RUN_TAG}={tag}".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"llama-server" not in cmdline.read_bytes().split(b"\0")[0]:
                continue
            if tag is None or marker in (cmdline.parent / "environ").read_bytes().split(b"\0"):
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


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("topic_clustering")``: benchmarks/<name>.py imported as a module (the benchmarks are scripts,
    not a package), so a test can call its functions."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
