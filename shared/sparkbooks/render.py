"""Turn executed playbooks into a static, offline guide site with nbconvert.

``site/<slug>.html`` is one guide (the ``sparkbooks`` nbconvert template: header card, the
Claims table — each headline, its baseline, the test and the verdict the run computed —, measured
results, code and outputs with images embedded); ``site/index.html`` lists them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import nbformat

from . import catalog, log
from .fileio import read_json, write_text_atomic
from .hardware import detect
from .runner import last_run
from .settings import settings

__all__ = ["guide_context", "render_guide", "render_index", "render_site", "site_links"]

TEMPLATE = "sparkbooks"


def _shown(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _css() -> str:
    return (settings.templates_dir / TEMPLATE / "sparkbooks.css").read_text()


def _results(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r, shown=_shown(r.get("value"))) for r in raw]


def _claims(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(c, shown_value=_shown(c.get("value")), shown_baseline=_shown(c.get("baseline_value")),
                 css=str(c.get("verdict", "")).replace(" ", "-")) for c in raw]


def guide_context(pb: catalog.Playbook, run_dir: Path) -> dict[str, Any]:
    """Everything the header card and results table show, from the run's files."""
    run = last_run(pb.slug, out=run_dir.parent) or {}
    failed = run.get("status") == "failed"
    results = read_json((run_dir / "failed" if failed else run_dir) / "results.json") or {}
    params = results.get("params") or run.get("params") or {}
    return {
        "slug": pb.slug, "title": pb.title, "summary": pb.summary, "minutes": pb.minutes,
        "hardware": pb.hardware, "tags": list(pb.tags),
        "status": run.get("status", "never"), "error": run.get("error"),
        "profile": results.get("profile") or run.get("profile", "?"),
        "machine": results.get("machine") or run.get("machine", "?"),
        "path_detail": results.get("path_detail", "not recorded"),
        "stand_ins": results.get("stand_ins", []),
        "date": (run.get("finished") or run.get("started") or "").replace("T", " ").replace("+00:00", " UTC"),
        "seconds": run.get("seconds"),
        "params": [
            {"name": n, "value": repr(v), "type": pb.parameters[n].annotation if n in pb.parameters else "?",
             "help": pb.parameters[n].help if n in pb.parameters else ""}
            for n, v in params.items()
        ],
        "results": _results(results.get("results", [])),
        "claims": _claims(results.get("claims") or []),
        "declared": [dict(c) for c in pb.claims],
        "css": _css(),
    }


def render_guide(slug: str, *, runs: Path | None = None, site: Path | None = None) -> Path | None:
    """Render ``runs/<slug>`` to ``site/<slug>.html``; ``None`` when the playbook never ran."""
    from nbconvert import HTMLExporter  # noqa: PLC0415 - heavy, only rendering needs it

    pb = catalog.get(slug)
    run_dir = Path(runs or settings.runs_dir) / slug
    notebook = run_dir / f"{slug}.ipynb"
    run = last_run(slug, out=run_dir.parent)
    if run and run.get("status") == "failed" and (run_dir / "failed" / notebook.name).exists():
        notebook = run_dir / "failed" / notebook.name
    if not notebook.exists():
        return None
    exporter = HTMLExporter(template_name=TEMPLATE, extra_template_basedirs=[str(settings.templates_dir)])
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["title"] = pb.title
    body, _ = exporter.from_notebook_node(nb, resources={"sparkbooks": guide_context(pb, run_dir)})
    return write_text_atomic(Path(site or settings.site_dir) / f"{slug}.html", site_links(body))


def site_links(html: str) -> str:
    """Links between guides as JupyterLab needs them (a relative path to ``…/<slug>/<slug>.ipynb``, from wherever the
    executed notebook sits) made the site's (``<slug>.html``), so one link in a notebook's output works in both places."""
    import re  # noqa: PLC0415

    return re.sub(r'href="(?:\.\./)+(?:[^":]*/)?([a-z0-9][a-z0-9-]*)/\1\.ipynb"', r'href="\1.html"', html)


def render_index(*, runs: Path | None = None, site: Path | None = None) -> Path:
    """Write ``site/index.html``: every playbook, its time, hardware, last run and headline results."""
    runs = Path(runs or settings.runs_dir)
    site = Path(site or settings.site_dir)
    guides = []
    for pb in catalog.discover():
        ctx = guide_context(pb, runs / pb.slug)
        wanted = pb.headline or tuple(r["name"] for r in ctx["results"][:3])
        by_name = {r["name"]: r for r in ctx["results"]}
        guides.append(ctx | {
            "href": f"{pb.slug}.html" if (site / f"{pb.slug}.html").exists() else None,
            "headline": [by_name[n] for n in wanted if n in by_name],
        })
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(settings.templates_dir / TEMPLATE)), autoescape=False)
    html = env.get_template("site_index.html.j2").render(
        guides=guides, css=_css(), machine=detect().summary(),
        built=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return write_text_atomic(site / "index.html", html)


def render_site(slugs: Iterable[str] | None = None, *, runs: Path | None = None, site: Path | None = None) -> Path:
    """Render the named playbooks (default: all that ran) and the index; return the index path."""
    names = list(slugs) if slugs else [pb.slug for pb in catalog.discover()]
    for slug in names:
        start = log.debug(f"rendering {slug}")
        path = render_guide(slug, runs=runs, site=site)
        if path is None:
            log.info(f"skipped {slug}: no run in {Path(runs or settings.runs_dir) / slug} (run `sparkbooks run {slug}`)")
        else:
            log.debug(f"rendered {path} ({{time_passed}})", time=start)
    return render_index(runs=runs, site=site)
