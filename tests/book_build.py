"""The HTML book, built once per test session and shared by the build check (test_book.py) and the browser
test (test_browser.py)."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BookBuild:
    returncode: int
    log: str
    html: Path  # _build/html of the build

    def page(self, docname: str) -> Path:
        return self.html / f"{docname}.html"


_BUILDS: dict[Path, BookBuild] = {}


def build_book(tmp_path_factory: pytest.TempPathFactory) -> BookBuild:
    """Build the book from the working tree with warnings as errors (and --keep-going, so that the HTML is
    written even when there are warnings), once per session."""
    if ROOT not in _BUILDS:
        out = tmp_path_factory.mktemp("book")
        jb = Path(sys.executable).with_name("jupyter-book")
        result = subprocess.run(
            [str(jb), "build", "--warningiserror", "--keep-going", "--path-output", str(out), str(ROOT)],
            capture_output=True, text=True, timeout=600,
        )
        _BUILDS[ROOT] = BookBuild(result.returncode, result.stdout + result.stderr, out / "_build" / "html")
    return _BUILDS[ROOT]


def toc_docnames() -> list[str]:
    """Every page of the book, as _toc.yml lists them (root first), e.g. "chapters/01_decision_boundaries"."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [name.removesuffix(".md").removesuffix(".ipynb") for name in names]


def source_of(docname: str) -> Path:
    """The source file (.md or .ipynb) of a page."""
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{docname}{suffix}").is_file():
            return ROOT / f"{docname}{suffix}"
    raise FileNotFoundError(f"no source for {docname} in {ROOT}")
