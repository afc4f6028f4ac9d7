"""Grade submissions with ``otter run``, and check that the assignments' tests do their job.

    python assignments/grade.py ch1 submissions/*.ipynb              # grade, print a table
    python assignments/grade.py ch1 submissions/ --csv ch1.csv       # every .ipynb in a folder, and a CSV
    python assignments/grade.py --check                              # the tests of the tests, every assignment
    python assignments/grade.py --check ch3                          # one assignment

Grading runs ``otter run`` (no Docker) once per submission with the autograder zip that
``python assignments/build.py`` wrote to ``assignments/dist/autograder``. Each run executes the notebook top
to bottom in a fresh kernel and then runs every test, hidden ones included. The book's trained models are
read from (and, the first time, trained into) ``data/checkpoints`` of this clone: ``$BOOK_ROOT`` is set to
it unless you set it yourself.

``--check`` builds the assignments into a temporary folder and grades (1) the solutions, which must get
every point; (2) the student notebooks as handed out, which must get no point on any question; (3) each
wrong answer kept in ``assignments/chN/wrong/`` injected into the solutions, which must pass its question's
public tests and lose points on the hidden ones. The wrong answers of all questions go into one notebook
(the questions are independent), one notebook per alternative when a question has several.
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import build  # noqa: E402 (the sibling script, importable once its folder is on the path)

MODELS = [("linear", "moons"), ("mlp", "moons"), ("cnn", "digits")]
"""The book's trained models the assignments load (:func:`warm_cache` trains them once, before parallel runs)."""


@dataclass(frozen=True)
class Score:
    """One question's result: points earned and possible, whether every public test case passed, and how
    many hidden test cases failed."""

    score: float
    possible: float
    public_passed: bool
    hidden_failed: int


def grading_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a grading run: the caller's, with ``BOOK_ROOT`` defaulting to this clone (so the
    kernel finds the cached models) and progress bars off."""
    out = dict(os.environ if env is None else env)
    out.setdefault("BOOK_ROOT", str(ROOT))
    out.setdefault("TQDM_DISABLE", "1")
    return out


def warm_cache(env: dict[str, str] | None = None) -> None:
    """Train (or verify) the book's models the assignments use, in the cache the grading runs will read."""
    code = ("from utils import config, data, train\nconfig.use('small', 0)\n"
            + "".join(f"train.pretrained({m!r}, {d!r}, data=data.load_dataset({d!r}), progress=False)\n"
                      for m, d in MODELS))
    subprocess.run([sys.executable, "-c", code], check=True, env=grading_env(env), cwd=ROOT)


def otter_run(autograder: Path, submission: Path, env: dict[str, str] | None = None) -> dict[str, Score]:
    """Grade one submission with ``otter run``, as an instructor would; returns each question's score."""
    import dill

    with tempfile.TemporaryDirectory(prefix="otter-run-") as out:
        cmd = [sys.executable, "-m", "otter", "run", "--no-logo", "-p", "-a", str(autograder), "-o", out,
               str(submission)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=grading_env(env), cwd=out)
        pickle = Path(out) / "results.pkl"
        if done.returncode != 0 or not pickle.is_file():
            raise RuntimeError(f"otter run failed on {submission}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        with open(pickle, "rb") as f:
            results = dill.load(f)
    return {name: Score(float(tf.score), float(tf.possible), bool(tf.passed_all_public),
                        sum(1 for r in tf.test_case_results if r.test_case.hidden and not r.passed))
            for name, tf in sorted(results.results.items())}


def wrong_answers(name: str) -> dict[str, list[Path]]:
    """The wrong answers kept for assignment ``name``, by question: ``wrong/q2_some_mistake.py`` → ``q2``."""
    out: dict[str, list[Path]] = {}
    for path in sorted((HERE / name / "wrong").glob("q*.py")):
        out.setdefault(path.stem.split("_")[0], []).append(path)
    return out


def defined_names(source: str) -> set[str]:
    """Top-level names a piece of code defines (functions, classes, assigned variables)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def inject(solutions: Path, files: Iterable[Path], dest: Path) -> Path:
    """Write ``dest``: the solved notebook with each wrong answer in place of the answer cell it redefines (the
    code cell that defines every name the wrong answer defines), as if a student had written it."""
    import nbformat

    nb = nbformat.read(solutions, as_version=4)
    for path in files:
        source = path.read_text(encoding="utf-8")
        wanted = defined_names(source)
        cells = [c for c in nb.cells if c.cell_type == "code" and wanted <= defined_names_safe(c.source)]
        if len(cells) != 1:
            raise ValueError(f"{path.name}: expected one answer cell defining {sorted(wanted)}, found {len(cells)}")
        cells[0].source = source
    nbformat.write(nb, dest)
    return dest


def defined_names_safe(source: str) -> set[str]:
    """:func:`defined_names` of a notebook cell, which may hold IPython syntax (``!cmd``, ``%magic``)."""
    try:
        return defined_names(source)
    except SyntaxError:
        return set()


def check(name: str, out: Path, env: dict[str, str] | None = None, jobs: int = 1, verbose: bool = False) -> list[str]:
    """The tests of assignment ``name``'s tests (see the module's docstring), built into ``out``; returns the
    problems found (empty: all good). ``verbose`` prints each run's scores and time."""
    paths = build.build(name, out)
    wrong = wrong_answers(name)
    problems = [f"{name}: {q} has no wrong answer in {name}/wrong/" for q in questions(paths["autograder"])
                if q not in wrong]
    variants = max((len(v) for v in wrong.values()), default=0)
    runs = {"solutions": paths["solutions"], "student": paths["student"]}
    chosen = [{q: files[min(k, len(files) - 1)] for q, files in wrong.items()} for k in range(variants)]
    for k in range(variants):
        runs[f"wrong {k + 1}"] = inject(paths["solutions"], list(chosen[k].values()),
                                        out / f"{name}-wrong-{k + 1}.ipynb")
        runs[f"wrong {k + 1}"].with_suffix(".txt").write_text("\n".join(p.name for p in chosen[k].values()))
    def timed(kind: str) -> tuple[str, dict[str, Score]]:
        start = time.perf_counter()
        scores = otter_run(paths["autograder"], runs[kind], env)
        if verbose:
            table = ", ".join(f"{q} {s.score:g}/{s.possible:g}" for q, s in scores.items())
            print(f"{name} {kind}: {table} (otter run {time.perf_counter() - start:.1f} s)", flush=True)
        return kind, scores

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        graded = dict(pool.map(timed, runs))
    for q, s in graded["solutions"].items():
        if s.score != s.possible:
            problems.append(f"{name} solutions: {q} got {s.score} of {s.possible}")
    for q, s in graded["student"].items():
        if s.score != 0:
            problems.append(f"{name} student notebook as handed out: {q} got {s.score} points, not 0")
    for k in range(variants):
        results = graded[f"wrong {k + 1}"]
        for q, path in chosen[k].items():
            s = results[q]
            if not s.public_passed:
                problems.append(f"{name} {path.name}: fails the public tests of {q} (a wrong answer should pass them)")
            if s.hidden_failed == 0 or s.score >= s.possible:
                problems.append(f"{name} {path.name}: the hidden tests of {q} do not catch it ({s.score}/{s.possible})")
    return problems


def questions(autograder: Path) -> list[str]:
    """The question names of an autograder zip (its ``tests/qK.py`` files)."""
    import zipfile

    with zipfile.ZipFile(autograder) as z:
        return sorted(Path(n).stem for n in z.namelist() if n.startswith("tests/") and n.endswith(".py"))


def grade(submissions: list[Path], autograder: Path, jobs: int = 1) -> list[dict[str, object]]:
    """Grade every submission; one row per submission: file, each question's score, total (or the error)."""
    def one(path: Path) -> dict[str, object]:
        row: dict[str, object] = {"submission": str(path)}
        try:
            scores = otter_run(autograder, path)
        except RuntimeError as err:
            return row | {"total": 0.0, "error": str(err).splitlines()[0]}
        return row | {q: s.score for q, s in scores.items()} | {"total": sum(s.score for s in scores.values())}

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, submissions))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="the assignment (ch1 … ch4, ch6: named after their chapters)")
    parser.add_argument("submissions", nargs="*", type=Path, help=".ipynb files or folders of them")
    parser.add_argument("--autograder", type=Path, help="the autograder zip (default: `make assignments`'s)")
    parser.add_argument("--csv", type=Path, help="also write the scores to this CSV file")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--check", action="store_true", help="check the tests (NAME: one assignment; default all)")
    args = parser.parse_args(argv)
    if args.check:
        names = [args.name] if args.name else list(build.masters())
        warm_cache()
        with tempfile.TemporaryDirectory(prefix="assignments-check-") as tmp:
            problems = [p for n in names for p in check(n, Path(tmp), jobs=args.jobs, verbose=True)]
        print("\n".join(problems) or f"all good: {', '.join(names)}")
        return 1 if problems else 0
    if not args.name or not args.submissions:
        parser.error("give an assignment name and submissions (or --check)")
    files = sorted(p for s in args.submissions for p in ([s] if s.is_file() else s.glob("*.ipynb")))
    autograder = args.autograder or build.DIST / "autograder" / f"{args.name}-autograder.zip"
    if not autograder.is_file():
        parser.error(f"{autograder} not found: run `make assignments` first")
    rows = grade(files, autograder, jobs=args.jobs)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for row in rows:
        print("  ".join(f"{k}={row.get(k, '')}" for k in columns))
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
