"""Shared fixtures: a private runs/site area, a fixture playbook home, opt-in markers, the CI skip policy."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
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


def pytest_collection_finish(session: pytest.Session) -> None:
    # after -k/-m deselection: only the playbooks of the tests that will run
    session.config.stash[_PREFETCH] = playbooks_to_prefetch(session.items)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order_playbook_tests_last(items)
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


# ---- Each playbook executed once, in the background while the other tests run ------------------------------------
# The twelve cpu runs take ≈ 18 of a fresh clone's minutes and the other tests ≈ 15: run one after the other they broke
# the 35-minute budget. So the playbooks a session needs start at once, one at a time, each in its own `sparkbooks run`
# process (the tests' monkeypatched settings and environment cannot leak into a run), while the tests that do not need
# them run first; a test that needs a playbook waits for that playbook only. Playbooks never run two at a time, so each
# run's recorded seconds stay comparable with the minutes its guide states.

#: the session's PlaybookRuns (at most one), for the cost table in the terminal summary
_SESSION_RUNS: list["PlaybookRuns"] = []
#: fixtures that execute playbooks: tests using them run last, after the tests that run beside the playbooks
PLAYBOOK_FIXTURES = ("playbook_runs", "executed")
#: the environment variable that marks a run's processes (a llama-server it started inherits it)
RUN_TAG = "SB_TEST_PLAYBOOK_RUN"  # not SPARKBOOKS_*: the CLI refuses unknown settings
_PREFETCH = pytest.StashKey[list[str]]()


def _claims_of(outcome: runner.RunResult) -> list[dict]:
    import json  # noqa: PLC0415

    try:
        return json.loads(outcome.results.read_text()).get("claims", []) if outcome.results else []
    except (OSError, ValueError):
        return []


def _needs_playbooks(item: pytest.Item) -> bool:
    return any(name in getattr(item, "fixturenames", ()) for name in PLAYBOOK_FIXTURES)


def playbooks_to_prefetch(items: list[pytest.Item]) -> list[str]:
    """Slugs the selected tests will ask for, in catalog order: every playbook when a test needs the whole site,
    else each ``slug`` a parametrized playbook test names (a test asking for a slug by name alone runs it on demand)."""
    needing = [item for item in items if _needs_playbooks(item)]
    if not needing:
        return []
    slugs = [pb.slug for pb in sb.catalog.discover()]
    wanted: set[str] = set()
    for item in needing:
        if "executed" in item.fixturenames:
            return slugs
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("slug") in slugs:
            wanted.add(callspec.params["slug"])
    return [s for s in slugs if s in wanted]


def order_playbook_tests_last(items: list[pytest.Item]) -> None:
    """Reorder in place: tests that need no playbook first, then the playbooks' tests, each group in its own order."""
    items[:] = [i for i in items if not _needs_playbooks(i)] + [i for i in items if _needs_playbooks(i)]


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
    """The session's playbook runs: each playbook executed at most once, in its own ``sparkbooks run`` process.

    :meth:`prefetch` starts the ones the session needs, one at a time, in a background thread; a test asking for a
    playbook waits for that one (or runs it then, if it was not prefetched). A failed run is reported to that
    playbook's tests only; the other playbooks still run.
    """

    def __init__(self, root: Path) -> None:
        _SESSION_RUNS.append(self)
        self.runs, self.site = root / "runs", root / "site"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)  # the session's environment as it started, before any test changed it
        self.servers_left: dict[str, set[int]] = {}  # llama-servers of each run still alive when its process ended
        self._outcomes: dict[str, runner.RunResult | str] = {}
        self._claimed: dict[str, threading.Event] = {}  # slug → set when its outcome exists
        self._guard = threading.Lock()
        self._children: set[subprocess.Popen] = set()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def prefetch(self, slugs: list[str]) -> None:
        """Start running ``slugs`` in the background, in this order, one at a time."""
        with self._guard:
            todo = [s for s in slugs if s not in self._claimed]
            for slug in todo:
                self._claimed[slug] = threading.Event()
        if todo:
            self._thread = threading.Thread(target=lambda: [self._execute(s) for s in todo], name="playbooks",
                                            daemon=True)
            self._thread.start()

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
        """The run's result, or the message of its failure (waiting for a prefetched run, else running it now)."""
        with self._guard:
            event = self._claimed.get(slug)
            mine = event is None
            if mine:
                event = self._claimed[slug] = threading.Event()
        if mine:
            self._execute(slug)
        event.wait()
        return self._outcomes[slug]

    def _execute(self, slug: str) -> None:
        """One cpu run of ``slug`` in a child process; its outcome recorded and its event set, whatever happens."""
        log = self.runs / f"{slug}.log"
        try:
            if self._stopping:
                raise RuntimeError("the test session ended before this playbook's turn")
            env = self.env | {RUN_TAG: self.tag(slug)}
            cmd = [sys.executable, "-m", "sparkbooks.cli", "run", slug, "--profile", "cpu", "--out", str(self.runs),
                   "--no-progress"]
            with log.open("wb") as sink, subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                                          cwd=REPO, preexec_fn=_stopped_with_the_session()) as child:
                with self._guard:
                    self._children.add(child)
                try:
                    code = child.wait()
                finally:
                    with self._guard:
                        self._children.discard(child)
            self.servers_left[slug] = llama_server_pids(tag=self.tag(slug))
            self._outcomes[slug] = self._read(slug, code, log)
        except Exception as exc:  # noqa: BLE001 - any failure belongs to this playbook alone
            self._outcomes[slug] = f"playbook {slug!r} could not be run: {type(exc).__name__}: {exc}"
        finally:
            self._claimed[slug].set()

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

    def stop(self) -> None:
        """Stop runs still going (the session ended early): SIGTERM, which a run treats as an interrupt."""
        with self._guard:
            self._stopping = True
            children = list(self._children)
        for child in children:
            child.terminate()

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
    runs = PlaybookRuns(tmp_path_factory.mktemp("build"))
    yield runs
    runs.stop()


@pytest.fixture(scope="session", autouse=True)
def _playbooks_in_the_background(request: pytest.FixtureRequest) -> None:
    """Start the playbooks this session's tests need as soon as it begins (nothing when none of them is selected)."""
    slugs = request.config.stash.get(_PREFETCH, [])
    if slugs:
        request.getfixturevalue("playbook_runs").prefetch(slugs)


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
