"""JupyterLab for real: a server with a token, playbooks opened in headless Chromium, run top to bottom, widgets drawn.

Runs on a copy of ``playbooks/`` (JupyterLab autosaves outputs into the files it opens), with the
working directory and ``profile auto`` a person gets when opening a playbook by hand. One playbook
(portfolio-cvar, the quickest with a widget) proves the route: every playbook already runs once
through papermill in test_playbooks, and running a second one here only doubled its cost (the
nemotron-nano chat box run took 86 s; the chat box itself is tested in test_llm).
"""

import os
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from sparkbooks.services import Service, free_port, http_ok

from .test_browser import headless_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]

# The notebook model as nbformat JSON, read from the running JupyterLab (exposed with expose_app_in_browser).
CELLS_JS = """
const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!widget || !widget.content || !widget.content.model) { return null; }
return Array.from(widget.content.model.cells).map(c => c.toJSON());
"""


class JupyterLab(Service):
    """``jupyter lab`` on a free loopback port with a token; the app object exposed for the test to drive."""

    def __init__(self, root: Path) -> None:
        super().__init__("jupyter-lab", startup_timeout=120, cwd=root)
        self.root, self.token, self.port = root, secrets.token_hex(16), 0

    def prepare(self) -> None:
        self.port = free_port()

    def command(self):
        return [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
                *(["--allow-root"] if os.geteuid() == 0 else [])]  # CI containers run as root

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/api/status?token={self.token}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{path}?token={self.token}"


def _not_regular(folder: str, names: list[str]) -> list[str]:
    """Names in ``folder`` that are neither files nor folders (sockets, FIFOs): copytree cannot copy them."""
    return [n for n in names if not (os.path.isfile(os.path.join(folder, n)) or os.path.isdir(os.path.join(folder, n)))]


def test_the_copy_skips_sockets(tmp_path):
    (tmp_path / "a.ipynb").write_text("{}")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "kernel-ipc-1"))
        assert _not_regular(str(tmp_path), ["a.ipynb", "kernel-ipc-1"]) == ["kernel-ipc-1"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    # Regular files and folders only: an interrupted run of an older version may have left kernel sockets there.
    shutil.copytree(REPO / "playbooks", root / "playbooks", ignore=_not_regular)
    server = JupyterLab(root / "playbooks").start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.running


@pytest.fixture(scope="module")
def chrome():
    driver = headless_chromium(window="1400,1800")
    yield driver
    driver.quit()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _run_all(chrome, lab, path: str, *, timeout: float) -> list[dict]:
    """Open ``path`` in JupyterLab, wait for its kernel, run every cell, and return the cells when all have run."""
    chrome.get(lab.url(path))
    _wait(lambda: chrome.execute_script(CELLS_JS), 120, f"{path} to open")
    _wait(lambda: chrome.execute_script(
        "const w = window.jupyterapp.shell.currentWidget; const k = w.sessionContext.session?.kernel;"
        "return k && k.status === 'idle';"), 120, "the kernel to start")
    chrome.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished():
        cells = [c for c in chrome.execute_script(CELLS_JS) if c["cell_type"] == "code"]
        busy = chrome.execute_script("return window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status;")
        errors = [c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
        if errors:
            return cells
        done = all(c.get("execution_count") for c in cells) and busy == "idle"
        return cells if done else None

    return _wait(finished, timeout, f"{path} to run top to bottom")


def _errors(cells: list[dict]) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_portfolio_slider_renders_after_a_full_run_in_jupyterlab(chrome, lab):
    from selenium.webdriver.common.by import By

    cells = _run_all(chrome, lab, "portfolio-cvar/portfolio-cvar.ipynb", timeout=600)
    assert _errors(cells) == []
    sliders = _wait(lambda: chrome.find_elements(By.CSS_SELECTOR, ".jp-OutputArea .widget-slider"), 60, "the slider")
    assert sliders and "Error displaying widget" not in chrome.page_source
