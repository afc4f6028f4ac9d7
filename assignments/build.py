"""Build the course assignments from their otter master notebooks (``make assignments`` calls this).

    python assignments/build.py                 # every assignment, into assignments/dist/
    python assignments/build.py ch2 ch4         # some of them
    python assignments/build.py --out DIR       # somewhere else
    python assignments/build.py --public-tests ch1 --dest tests   # only ch1's public tests, as files (Colab)

Each master ``assignments/chN/chN.ipynb`` (solutions, public and hidden tests) goes through ``otter assign``,
and the results are laid out for an instructor:

    dist/student/chN.ipynb                the notebook to hand out: solutions removed, public tests inside
    dist/autograder/chN-autograder.zip    what ``otter run`` grades a submission with (all tests, hidden too)
    dist/solutions/chN.ipynb              the solved notebook (keep it private)

``--public-tests`` writes one ``qK.py`` per question (public test cases only) into ``--dest``: on Colab,
where otter cannot read tests from the notebook's own metadata, a student notebook's first cell calls it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIST = HERE / "dist"


def masters() -> dict[str, Path]:
    """Every assignment's master notebook by name: ``{"ch1": assignments/ch1/ch1.ipynb, …}``."""
    return {p.parent.name: p for p in sorted(HERE.glob("ch*/ch*.ipynb")) if p.stem == p.parent.name}


def otter_assign(master: Path, result: Path) -> None:
    """Run ``otter assign`` on one master (without executing it: the tests of the tests do that)."""
    cmd = [sys.executable, "-m", "otter", "assign", "--no-run-tests", "--no-pdfs", str(master), str(result)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"otter assign failed on {master}:\n{done.stdout}\n{done.stderr}")


def build(name: str, out: Path = DIST) -> dict[str, Path]:
    """Build assignment ``name`` into ``out``; returns the paths of its student notebook, autograder zip and
    solutions notebook."""
    master = masters()[name]
    paths = {"student": out / "student" / f"{name}.ipynb", "autograder": out / "autograder" / f"{name}-autograder.zip",
             "solutions": out / "solutions" / f"{name}.ipynb"}
    with tempfile.TemporaryDirectory(prefix=f"otter-{name}-") as tmp:
        result = Path(tmp) / name
        otter_assign(master, result)
        (zip_file,) = (result / "autograder").glob(f"{name}-autograder_*.zip")  # otter stamps the time in the name
        sources = {"student": result / "student" / f"{name}.ipynb", "autograder": zip_file,
                   "solutions": result / "autograder" / f"{name}.ipynb"}
        for kind, path in paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sources[kind], path)
    return paths


def public_tests(name: str, dest: Path) -> list[Path]:
    """Write assignment ``name``'s public tests, one file per question, into ``dest``."""
    import nbformat

    with tempfile.TemporaryDirectory(prefix=f"otter-{name}-") as tmp:
        otter_assign(masters()[name], Path(tmp) / name)
        notebook = nbformat.read(Path(tmp) / name / "student" / f"{name}.ipynb", as_version=4)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for question, source in notebook.metadata["otter"]["tests"].items():
        path = dest / f"{question}.py"
        path.write_text(source, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"assignments to build (default: all of {', '.join(masters())})")
    parser.add_argument("--out", type=Path, default=DIST, help="output folder (default: assignments/dist)")
    parser.add_argument("--public-tests", metavar="NAME", help="write only NAME's public tests, as files")
    parser.add_argument("--dest", type=Path, default=Path("tests"), help="folder for --public-tests (default: tests)")
    args = parser.parse_args(argv)
    if args.public_tests:
        files = public_tests(args.public_tests, args.dest)
        print(f"{len(files)} public test files for {args.public_tests} in {args.dest}")
        return 0
    unknown = sorted(set(args.names) - set(masters()))
    if unknown:
        parser.error(f"unknown assignments {unknown}; known: {list(masters())}")
    for name in args.names or list(masters()):
        start = time.perf_counter()
        paths = build(name, args.out)
        print(f"{name}: {paths['student'].relative_to(args.out)}, {paths['autograder'].relative_to(args.out)} "
              f"({time.perf_counter() - start:.1f} s)")
    print(f"Hand out {args.out / 'student'}; grade with the zips in {args.out / 'autograder'} "
          f"(python assignments/grade.py NAME SUBMISSIONS…); keep {args.out / 'solutions'} private.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
