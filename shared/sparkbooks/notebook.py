"""The committed-notebook contract: no outputs except cells tagged ``nbval-check-output``.

:func:`clean` strips a notebook to that form; with ``executed=`` it first takes the tagged
cells' outputs from an executed run, so nbval has a reference to compare against.
:func:`contract_problems` lists every way a committed playbook breaks the contract.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from . import catalog
from .exceptions import MetadataError

__all__ = ["CHECK_TAG", "clean", "contract_problems"]

CHECK_TAG = "nbval-check-output"
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
    return problems
