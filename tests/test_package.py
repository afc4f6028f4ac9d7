"""The package's shape: a one-way import graph, no private name used across modules, small modules."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "utils"
MODULES = sorted(p for p in [*PACKAGE.glob("*.py"), *PACKAGE.glob("chapters/*.py")] if p.name != "__init__.py")
NAMES = {p.stem for p in MODULES}


def imports(path: Path) -> set[str]:
    """The package modules ``path`` imports (``from . import x`` and ``from .x import y``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            found |= {node.module.split(".")[-1]} if node.module else {a.name for a in node.names}
    return found & NAMES


def test_the_import_graph_is_one_way():
    graph = {p.stem: imports(p) for p in MODULES}
    order, done = [], set()

    def visit(name, path):
        assert name not in path, f"import cycle: {' → '.join([*path, name])}"
        if name not in done:
            for dep in sorted(graph[name]):
                visit(dep, [*path, name])
            done.add(name)
            order.append(name)

    for name in graph:
        visit(name, [])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_private_name_crosses_a_module_boundary(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.name} imports private names {private} from .{node.module}"
    text = path.read_text()
    used = re.findall(rf"\b({'|'.join(NAMES)})\._[a-z]\w*", text)
    assert not used, f"{path.name} uses private names of {sorted(set(used))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_modules_stay_small_and_every_public_function_is_documented(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= 300, f"{path.name} has {len(lines)} lines; split it by idea"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            assert ast.get_docstring(node), f"{path.name}: {node.name} has no docstring"
            if isinstance(node, ast.FunctionDef):
                assert node.returns is not None, f"{path.name}: {node.name} has no return type hint"


def test_the_chapter_list_is_the_chapter_modules_and_the_table_of_contents_agrees():
    import yaml

    from utils import contents as chapters

    toc = yaml.safe_load((PACKAGE.parent / "_toc.yml").read_text())
    listed = [c["file"].removeprefix("chapters/") for part in toc["parts"] for c in part["chapters"]
              if c["file"].startswith("chapters/")]
    assert listed == list(chapters.names())
    notebooks = sorted(p.stem for p in (PACKAGE.parent / "chapters").glob("*.ipynb"))
    assert notebooks == list(chapters.names())
    assert [chapters.number(n) for n in chapters.names()] == sorted({chapters.number(n) for n in chapters.names()})


def test_the_version_has_one_source():
    import importlib.metadata

    import utils

    assert importlib.metadata.version("fragile-yet-robust-utils") == utils.__version__
