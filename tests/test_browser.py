"""The rendered site in a real headless Chromium: pages load, show titles and results, stay offline."""

import json
import os
import shutil
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("SPARKBOOKS_REQUIRE_BROWSER") == "1"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def headless_chromium(*, window: str, network_log: bool = False):
    """A headless Chromium driven by Selenium (skips, or fails under SPARKBOOKS_REQUIRE_BROWSER=1, without one)."""
    if not (CHROMIUM and DRIVER):
        message = "browser check skipped: install Debian chromium and chromium-driver (`.ci/run` does)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={window}"):
        options.add_argument(arg)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium(window="1280,1800", network_log=True)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _load(driver, path):
    driver.get_log("performance")  # drop earlier entries
    driver.get(path.as_uri())
    return _requests(driver)


def test_index_and_guide_render_offline(browser, executed):
    from selenium.webdriver.common.by import By

    site = executed["site"]
    requests = _load(browser, site / "index.html")
    assert browser.title == "sparkbooks — playbooks"
    link = browser.find_element(By.CSS_SELECTOR, "#pb-start-here a")
    assert "Start here" in link.text
    link.click()
    requests += _requests(browser)
    assert browser.title.startswith("Start here")
    header = browser.find_element(By.ID, "sb-header").text
    assert "profile cpu" in header and "ok" in header
    results = browser.find_element(By.ID, "sb-results").text
    assert "pandas_etl_cpu_s" in results and "forest_accuracy" in results
    images = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    assert images and all(img.get_property("naturalWidth") > 0 for img in images)
    off_machine = [u for u in requests if urlparse(u).scheme not in ("file", "data", "about", "chrome")]
    assert off_machine == []


def test_topic_map_is_interactive_offline(browser, executed):
    """The plotly map ships its own JavaScript: it draws every document and shows hover text with no network."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    requests = _load(browser, executed["site"] / "topic-clustering.html")
    results = json.loads((executed["runs"] / "topic-clustering" / "results.json").read_text())
    n_docs = results["params"]["n_docs"]
    points = WebDriverWait(browser, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".plotly-graph-div .scatterlayer .point"))
    assert len(points) == n_docs
    legend = browser.find_element(By.CSS_SELECTOR, ".plotly-graph-div .legend").text
    assert "outliers" in legend
    point = next(p for p in points if p.is_displayed() and p.size["width"] > 0)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", point)
    ActionChains(browser).move_to_element(point).perform()
    hover = WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".hoverlayer .hovertext"))
    assert hover and hover[0].text.strip()
    off_machine = [u for u in requests if urlparse(u).scheme not in ("file", "data", "about", "chrome")]
    assert off_machine == []


def test_knowledge_graph_draws_offline_inside_its_frame(browser, executed):
    """txt2kg's vis-network page (inlined JavaScript, in an iframe) draws every entity of the gold graph offline."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    requests = _load(browser, executed["site"] / "txt2kg.html")
    results = json.loads((executed["runs"] / "txt2kg" / "results.json").read_text())
    entities = next(r["value"] for r in results["results"] if r["name"] == "gold_graph_entities")
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.sb-graph")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", frame)
    browser.switch_to.frame(frame)
    try:
        drawn = WebDriverWait(browser, 20).until(
            lambda d: d.execute_script("return window.sbNetwork && window.sbNetwork.body.data.nodes.length"))
        canvas = browser.find_element(By.CSS_SELECTOR, "#graph canvas")
        assert drawn == entities and canvas.size["width"] > 200 and canvas.size["height"] > 200
    finally:
        browser.switch_to.default_content()
    requests += _requests(browser)
    off_machine = [u for u in requests if urlparse(u).scheme not in ("file", "data", "about", "chrome")]
    assert off_machine == []
