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


def _claimed_home(tmp_path, monkeypatch):
    """A home with one playbook declaring two claims, and a run of it that recorded one (no execution needed)."""
    import json
    import shutil

    import nbformat

    import sparkbooks as sb
    from sparkbooks.claims import evaluate

    from .conftest import FIXTURES, REPO

    home = tmp_path / "home"
    book = home / "playbooks" / "claimed"
    shutil.copytree(FIXTURES / "fixture-failures", book)
    nb = nbformat.read(book / "fixture-failures.ipynb", as_version=4)
    (book / "fixture-failures.ipynb").unlink()
    nb.metadata["playbook"]["minutes"] = {"cpu": 0.1, "spark": "not measured"}
    nb.metadata["playbook"]["claims"] = [
        {"name": "beats_kmeans", "metric": "ami", "baseline": "ami_kmeans", "compare": "greater", "test": "exact"},
        {"name": "beats_lda", "metric": "ami", "baseline": "ami_lda", "compare": "greater", "test": "exact",
         "text": "beats LDA"},
    ]
    nbformat.write(nb, book / "claimed.ipynb")
    (home / "nbconvert_templates").symlink_to(REPO / "nbconvert_templates")
    monkeypatch.setattr(sb.settings, "home", home)
    monkeypatch.setenv("SPARKBOOKS_HOME", str(home))
    c = evaluate("beats_kmeans", value=0.41, baseline=0.52, metric="ami", baseline_name="ami_kmeans", test="exact",
                 compare="greater", text="HDBSCAN agrees with the sections better than k-means at the same k")
    run = tmp_path / "runs" / "claimed"
    run.mkdir(parents=True)
    cell = nbformat.v4.new_code_cell("sb.claim(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": c.sentence, "text/html": c._repr_html_()})]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell], metadata=nb.metadata), run / "claimed.ipynb")
    (run / "results.json").write_text(json.dumps({
        "profile": "cpu", "results": [{"name": "ami", "value": 0.41, "unit": "", "note": ""},
                                      {"name": "ami_kmeans", "value": 0.52, "unit": "", "note": ""}],
        "claims": [c.to_dict()]}))
    (run / "run.json").write_text(json.dumps({"status": "ok", "profile": "cpu", "finished": "2026-12-06T10:00:00+00:00"}))
    return tmp_path


def test_guide_shows_the_claims_table_at_the_top_with_computed_verdicts(tmp_path, monkeypatch):
    from sparkbooks.render import render_guide

    root = _claimed_home(tmp_path, monkeypatch)
    html = render_guide("claimed", runs=root / "runs", site=root / "site").read_text()
    assert html.index('id="sb-header"') < html.index('id="sb-claims"') < html.index('id="sb-results"')
    table = html[html.index('id="sb-claims"'):html.index('id="sb-results"')]
    for header in ("<th>claim</th>", "<th>value</th>", "<th>baseline</th>", "<th>test</th>", "<th>verdict</th>"):
        assert header in table
    row = table[table.index('id="claim-beats_kmeans"'):]
    row = row[:row.index("</tr>")]
    assert "HDBSCAN agrees with the sections better than k-means" in row and "0.41" in row and "0.52" in row
    assert "exact figures, no sampling test" in row and 'sb-verdict-does-not-hold">does not hold<' in row
    # declared but not recorded: shown as such, never as a verdict
    assert 'id="claim-beats_lda"' in table and "not recorded by this run" in table
    # the sentence in the guide's body is the claim's own, shown as prose
    assert 'class="sb-claim sb-claim-does-not-hold"' in html
    # a profile's time nobody measured says so, and is not given a unit
    assert "0.1 min (cpu)" in html and "not measured (spark)" in html and "not measured min" not in html


def test_index_lists_each_guides_verdicts(tmp_path, monkeypatch):
    from sparkbooks.render import render_index

    root = _claimed_home(tmp_path, monkeypatch)
    html = render_index(runs=root / "runs", site=root / "site").read_text()
    row = html[html.index('id="pb-claimed"'):]
    row = row[:row.index("</tr>")]
    assert '<span class="sb-verdict sb-verdict-does-not-hold" title="HDBSCAN agrees with the sections better than k-means at the same k">does not hold</span>' in row


def test_links_between_guides_work_in_jupyterlab_and_on_the_site():
    """Review 48 (round 7): start-here's Next steps linked <slug>.html, which 404s inside JupyterLab; the notebook's
    link is now the one JupyterLab opens, and the site's renderer turns it into the page's."""
    from sparkbooks import render

    html = ('<a href="../topic-clustering/topic-clustering.ipynb">T</a> <a href="../../playbooks/rag/rag.ipynb">R</a> '
            '<a href="../other/file.ipynb">x</a> <a href="https://x.org/a/a.ipynb">u</a>')
    assert render.site_links(html) == ('<a href="topic-clustering.html">T</a> <a href="rag.html">R</a> '
                                       '<a href="../other/file.ipynb">x</a> <a href="https://x.org/a/a.ipynb">u</a>')
