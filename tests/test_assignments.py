"""The course assignments (``assignments/``): they build, and their tests do their job, graded with ``otter run``
as an instructor would.

For every assignment: the master's solutions get every point; the student notebook as handed out gets no
point on any question (its stubs fail, without crashing the grader); each wrong answer kept in
``assignments/chN/wrong/`` passes its question's public tests and loses points on the hidden ones. The
kernels share one temporary book root, so the book's models are trained (or copied from this clone's cache)
once: about 3 minutes on 2 cores with the models cached, 5 when it trains them first.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"assignments_{name}", ASSIGNMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(ASSIGNMENTS))  # grade.py imports its sibling build.py
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ASSIGNMENTS))
    return module


build = _load("build")
grade = _load("grade")
NAMES = list(build.masters())


@pytest.fixture(scope="module")
def grading(tmp_path_factory):
    """A book root shared by this module's grading runs, with the book's models in its cache, and the
    environment the runs get."""
    root = tmp_path_factory.mktemp("assignments-root")
    cached = ROOT / "data" / "checkpoints"
    if cached.is_dir():  # reuse this clone's trained models if the chapters have run (only read here)
        shutil.copytree(cached, root / "data" / "checkpoints", ignore=shutil.ignore_patterns(".*"))
    env = {k: v for k, v in os.environ.items() if k not in ("BOOK_CHECKPOINTS", "BOOK_SCALE", "BOOK_SEED")}
    env |= {"BOOK_ROOT": str(root), "TQDM_DISABLE": "1"}
    grade.warm_cache(env)
    return env


def test_five_assignments():
    assert NAMES == ["ch1", "ch2", "ch3", "ch4", "ch6"]


@pytest.mark.parametrize("name", NAMES)
def test_solutions_students_and_wrong_answers(name, grading, tmp_path):
    problems = grade.check(name, tmp_path, env=grading, jobs=2)
    assert not problems, "\n".join(problems)


def test_build_lays_out_dist(tmp_path):
    assert build.main(["--out", str(tmp_path)]) == 0
    for name in NAMES:
        student = (tmp_path / "student" / f"{name}.ipynb").read_text(encoding="utf-8")
        assert (tmp_path / "autograder" / f"{name}-autograder.zip").is_file()
        assert (tmp_path / "solutions" / f"{name}.ipynb").is_file()
        assert "SOLUTION" not in student and "hidden=True" not in student, f"{name}: solutions or hidden tests"
        public = sorted(p.name for p in build.public_tests(name, tmp_path / f"{name}-tests"))
        assert public == [f"q{k}.py" for k in range(1, len(public) + 1)] and 3 <= len(public) <= 5
        assert not any("hidden=True" in (tmp_path / f"{name}-tests" / p).read_text() for p in public)


def test_public_tests_as_files_work_with_otter(tmp_path):
    """The Colab path: public tests written as files, and otter's ``Notebook.check`` reading them."""
    build.public_tests("ch4", tmp_path / "tests")
    code = ("import otter\ngrader = otter.Notebook()\n"
            "def per_bit_factor(bits):\n    return ((2**bits - 1) / (2 ** (bits - 1) - 1)) ** 2\n"
            "assert grader.check('q4').passed_all\n"
            "def per_bit_factor(bits):\n    return ...\n"
            "assert not grader.check('q4').passed_all\n")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)


def test_every_question_states_points_and_minutes():
    """Each question's heading gives its points (equal to otter's) and an estimated time, and the instructor
    page lists the same questions, points and minutes."""
    import nbformat

    page = (ROOT / "book" / "for_instructors.md").read_text(encoding="utf-8")
    for name, master in build.masters().items():
        nb = nbformat.read(master, as_version=4)
        configs = [c.source for c in nb.cells if c.cell_type == "raw" and c.source.startswith("# BEGIN QUESTION")]
        points = [int(re.search(r"points: (\d+)", c).group(1)) for c in configs]
        heading = r"## Question (\d) — (.+?) \*\((\d+) points, about (\d+) minutes\)\*"
        headings = [m for c in nb.cells if c.cell_type == "markdown" for m in re.findall(heading, c.source)]
        assert [int(h[0]) for h in headings] == list(range(1, len(configs) + 1)), f"{name}: question headings"
        assert [int(h[2]) for h in headings] == points, f"{name}: points in the headings differ from otter's"
        minutes = sum(int(h[3]) for h in headings)
        summary = f"**{len(points)} questions, {sum(points)} points, about {minutes} minutes.**"
        assert summary in nb.cells[1].source, f"{name}: the introduction should say {summary}"
        for number, title, pts, minutes in headings:
            row = f"| {name} | {number} | {title} | {pts} | {minutes} |"
            assert row in page, f"book/for_instructors.md lacks the row {row!r}"
