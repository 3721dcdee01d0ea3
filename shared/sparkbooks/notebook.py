"""The committed-notebook contract: no outputs except cells tagged ``nbval-check-output``.

:func:`clean` strips a notebook to that form; with ``executed=`` it first takes the tagged
cells' outputs from an executed run, so nbval has a reference to compare against.
:func:`contract_problems` lists every way a committed playbook breaks the contract.
:func:`output_differences` applies nbval's own comparison to a run that already happened
(papermill's), so CI executes each playbook once instead of twice.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from pathlib import Path

import nbformat

from . import catalog
from .exceptions import MetadataError

__all__ = ["CHECK_TAG", "VOLATILE_LINES", "clean", "contract_problems", "output_differences"]

CHECK_TAG = "nbval-check-output"
#: Lines that depend on the machine's state, not the playbook's result: a download on a cold cache and its
#: heartbeat. Removed before comparing, like ``--nbval-sanitize-with``.
VOLATILE_LINES: dict[str, str] = {
    r"(?m)^(fetching|fetched) [^\n]*\n": "",
    r"(?m)^ +[^\n]* … still running \([^)\n]*\)\n": "",
}
_VOLATILE_CELL_META = ("execution", "papermill", "collapsed", "scrolled")
_VOLATILE_NB_META = ("papermill", "widgets")


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def clean(path: Path, *, executed: Path | None = None) -> nbformat.NotebookNode:
    """Strip ``path`` in place (keeping tagged outputs); adopt them from ``executed`` when given.

    Returns the cleaned notebook.

    Raises
    ------
    MetadataError
        ``executed`` does not line up cell by cell with ``path``.
    """
    nb = nbformat.read(path, as_version=4)
    if executed is not None:
        ran = nbformat.read(executed, as_version=4)
        ran.cells = [c for c in ran.cells if "injected-parameters" not in _tags(c)]
        if [c.source for c in ran.cells] != [c.source for c in nb.cells]:
            raise MetadataError(f"{executed} was not run from the current {path}: run it again, then clean.")
        for cell, done in zip(nb.cells, ran.cells):
            if cell.cell_type == "code" and CHECK_TAG in _tags(cell):
                cell.outputs, cell.execution_count = done.outputs, done.execution_count
    for cell in nb.cells:
        for key in _VOLATILE_CELL_META:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code" and CHECK_TAG not in _tags(cell):
            cell.outputs, cell.execution_count = [], None
    for key in _VOLATILE_NB_META:
        nb.metadata.pop(key, None)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return nb


def contract_problems(path: Path) -> list[str]:
    """Every way the committed notebook at ``path`` breaks the playbook contract (empty = fine)."""
    problems: list[str] = []
    try:
        pb = catalog.load(path)
    except MetadataError as exc:
        return [str(exc)]
    nb = nbformat.read(path, as_version=4)
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("kernelspec must be python3")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tagged = CHECK_TAG in _tags(cell)
        if cell.outputs and not tagged:
            problems.append(f"cell {i} has outputs but is not tagged {CHECK_TAG}")
        if tagged and cell.execution_count is None:
            problems.append(f"cell {i} is tagged {CHECK_TAG} but has no execution count (nbval would skip it)")
        if tagged and not cell.outputs:
            problems.append(f"cell {i} is tagged {CHECK_TAG} but has no reference output")
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in _tags(c))
    following = next((c for c in nb.cells[index + 1:] if c.cell_type == "code"), None)
    if following is None or "sb.begin(globals()" not in following.source:
        problems.append("the code cell after the parameters must call sb.begin(globals())")
    if not pb.title or not pb.summary:
        problems.append("playbook.title and playbook.summary must not be empty")
    problems += _imports_before_begin(nb, pb.accelerators)
    return problems


def _imports_before_begin(nb: nbformat.NotebookNode, accelerators: tuple[str, ...]) -> list[str]:
    """Libraries an accelerator replaces must be imported after ``sb.begin`` switches it on."""
    import ast  # noqa: PLC0415

    from .accel import ACCELERATORS  # noqa: PLC0415

    replaced = {lib for name in accelerators for lib in ACCELERATORS[name]}
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if "sb.begin(globals()" in cell.source:
            break
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            late = sorted({n.split(".")[0] for n in names} & replaced)
            if late:
                problems.append(f"cell {i} imports {', '.join(late)} before sb.begin() switches on "
                                f"{', '.join(accelerators)}: move the import after the begin cell")
    return problems


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in _tags(c)]


def output_differences(committed: Path, executed: Path, *,
                       sanitize: Mapping[str, str] | None = VOLATILE_LINES) -> list[str]:
    """How the executed run's ``nbval-check-output`` cells differ from the committed reference outputs.

    The comparison is nbval's (``IPyNbCell.compare_outputs`` after ``coalesce_streams``, the same
    keys skipped, images ignored as without ``--nbdime``), applied to the cells of a notebook that
    papermill already executed; ``sanitize`` maps regular expressions to replacements, like
    ``--nbval-sanitize-with``. Returns one message per differing cell (empty: all match).

    Raises
    ------
    MetadataError
        ``executed`` was not run from the committed notebook's current cells.
    """
    from nbval.plugin import IPyNbCell, coalesce_streams, nocolors  # noqa: PLC0415

    ref_nb, run_nb = nbformat.read(committed, as_version=4), nbformat.read(executed, as_version=4)
    refs, runs = _code_cells(ref_nb), _code_cells(run_nb)
    if [c.source for c in refs] != [c.source for c in runs]:
        raise MetadataError(f"{executed} was not run from the current {committed}: run the playbook again.")
    # nbval 0.11's IPyNbFile.skip_compare without --nbdime: volatile keys, widget ids and images are not compared
    skip = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
            "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")
    patterns = dict(sanitize or {})
    problems = []
    for ref, run in zip(refs, runs):
        if CHECK_TAG not in _tags(ref) or ref.execution_count is None:
            continue
        shim = types.SimpleNamespace(parent=types.SimpleNamespace(skip_compare=skip, sanitize_patterns=patterns),
                                     colors=nocolors, comparison_traceback=[])
        shim.sanitize = lambda text, _shim=shim: IPyNbCell.sanitize(_shim, text)
        shim.format_output_compare = lambda key, left, right, _shim=shim: _shim.comparison_traceback.append(
            f"mismatch {key!r}:\n  reference: {left!r}\n  this run:  {right!r}")
        outputs = [nbformat.from_dict(o) for o in run.outputs]
        if not IPyNbCell.compare_outputs(shim, coalesce_streams(outputs), coalesce_streams(list(ref.outputs))):
            first = ref.source.splitlines()[0] if ref.source else ""
            problems.append(f"cell starting {first!r}: " + re.sub(r"\s+\n", "\n", "\n".join(shim.comparison_traceback)))
    return problems