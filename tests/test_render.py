import re

import pytest

EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


@pytest.mark.slow
def test_guide_has_header_card_results_and_no_injected_cell(executed):
    html = (executed["site"] / "start-here.html").read_text()
    assert 'id="sb-header"' in html and "Start here: your machine" in html
    assert 'id="sb-results"' in html and "pandas_etl_cpu_s" in html
    assert "Injected parameters" not in html and "injected-parameters" not in html
    assert "data:image/png;base64," in html  # the plot is embedded


@pytest.mark.slow
@pytest.mark.parametrize("page", ["index.html", "start-here.html"])
def test_pages_load_nothing_from_outside(executed, page):
    html = (executed["site"] / page).read_text()
    assert not EXTERNAL.findall(html)
    assert "require.js" not in html and "mathjax" not in html.lower().replace("mathjax-", "")


@pytest.mark.slow
def test_index_lists_each_playbook_with_status_and_headline(executed):
    html = (executed["site"] / "index.html").read_text()
    assert 'href="start-here.html"' in html
    assert "sb-status-ok" in html and "forest_accuracy" in html
