"""A chapter notebook made small for a live front-end test: a copy, cut after its explorer cell, with the
chapter's sizes shrunk by lines appended to its ``parameters`` cell. The repository's notebooks are only read."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
EXPLORER_CALL = re.compile(r"\bexplorers?\.|\bexplorer\(")  # here.explorer(…), explorers.Explorer(…)


def explorer_cell(nb: nbformat.NotebookNode) -> int:
    """The index of the chapter's explorer cell: the first code cell whose source calls an explorer."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and EXPLORER_CALL.search(cell.source):
            return i
    raise LookupError("no cell calls an explorer (here.explorer(…) or explorers.…)")


def parameters_cell(nb: nbformat.NotebookNode) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return i
    raise LookupError("no cell is tagged 'parameters'")


def small_copy(chapter: str, dest: Path, overrides: str, extra: tuple[str, ...] = ()) -> tuple[Path, int]:
    """Write ``chapter`` (e.g. ``"01_decision_boundaries"``) to ``dest/<chapter>.ipynb`` with its outputs
    cleared, every cell after its explorer cell dropped, ``overrides`` (Python) appended to its parameters
    cell and the code cells ``extra`` added at the end; returns the copy's path and the index of the explorer
    cell among its code cells."""
    nb = nbformat.read(CHAPTERS / f"{chapter}.ipynb", as_version=4)
    nb.cells = nb.cells[: explorer_cell(nb) + 1]
    p = parameters_cell(nb)
    nb.cells[p].source = nb.cells[p].source.rstrip() + "\n# the front-end test's sizes\n" + overrides.strip() + "\n"
    nb.cells += [nbformat.v4.new_code_cell(source) for source in extra]
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{chapter}.ipynb"
    nbformat.write(nb, path)
    return path, sum(c.cell_type == "code" for c in nb.cells) - len(extra) - 1
