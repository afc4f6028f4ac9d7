"""Colab's stack as a tested configuration: build a Colab-like environment, install the book into it the way
a chapter's first cell does on Colab, and run the book there.

    python tools/colab_stack.py                                    # Colab today: torch 2.11, numpy 2.1, …
    python tools/colab_stack.py --torch 2.14.1 --torchvision 0.29.1 # another torch in the same stack
    python tools/colab_stack.py --python python3.11 --torch 2.2.2 --torchvision 0.17.2 --numpy '1.26.*' \
        --steps runtime,install,chapter,explorers      # the oldest versions pyproject.toml names

Steps (each timed; ``--steps`` picks some, in this order):

1. ``runtime``: a fresh, empty virtual environment with what Colab has before a notebook runs — torch and
   torchvision (PyPI's builds; the CUDA build runs on the CPU), numpy 2.1, ipywidgets 7.7.1 (Colab does not
   support 8), IPython 7.34 (where it installs: ``--ipython ''`` lifts the pin), ipykernel 6, and the
   scientific packages Colab ships (matplotlib, scipy, pandas, scikit-learn, seaborn, tqdm; nbclient,
   nbformat and pytest, which the steps below use). Not onnx, onnxruntime or myst-nb: Colab lacks them.
2. ``install``: the chapter's Colab cell — ``pip install ./book-src`` of the package alone (not
   requirements.txt), from a copy of this working tree (what ``git clone`` gives Colab), with pip's cache
   off (a fresh Colab runtime downloads everything).
3. ``first-figure`` and ``chapter``: chapter 1, top to bottom, in a fresh kernel, at the small scale, with a
   fresh book root (no trained model cached, as on a new Colab runtime) and claim records in a temporary
   folder: the time to its first figure (the first cell with an ``image/png`` output) and to its end. Every
   claim must hold.
4. ``explorers``: the explorers' unit tests (``tests/test_explorers.py``) with that environment's
   ipywidgets 7.7.1, against the installed package.
5. ``assignment``: ``pip install "otter-grader>=7,<8"`` as the assignment's Colab cell does, writing the
   public tests as its Colab cell does (``build.py --public-tests ch1``), then ``grade.py --check ch1``:
   the solutions get every point, the student notebook none, each wrong answer loses its hidden points.

It prints the versions, each step's result and time, and writes them as JSON (``--report``). The
environment goes under /tmp (``--venv``); nothing in the repository is written.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("runtime", "install", "first-figure", "chapter", "explorers", "assignment")
COLAB_EXTRAS = ("matplotlib", "scipy", "pandas", "scikit-learn", "seaborn", "tqdm", "nbclient", "nbformat", "pytest")
VERSIONS = ("torch", "torchvision", "numpy", "ipywidgets", "ipython", "ipykernel", "jupyter_client", "traitlets",
            "matplotlib", "scipy", "pandas", "scikit-learn", "seaborn", "myst-nb", "onnx", "onnxscript",
            "onnxruntime", "otter-grader", "nbclient", "fragile-yet-robust-utils")


def find_python(version: str = "3.13") -> str | None:
    """An interpreter of Colab's Python version that runs: on PATH, or one pyenv has built (pyenv's shim on
    PATH fails unless that version is selected)."""
    candidates = [shutil.which(f"python{version}"),
                  *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))]
    for candidate in filter(None, candidates):
        done = subprocess.run([candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


WATCHED = ("torch", "torchvision", "numpy", "ipywidgets", "ipython", "ipykernel")  # Colab's preinstalled pins


class Run:
    """The steps' results, printed as they come and kept for the JSON report."""

    def __init__(self, log: Path):
        self.log, self.results, self.started, self.pins = log, {}, time.perf_counter(), {}

    def drift(self, step: str, python: Path) -> dict[str, str]:
        """What ``step`` changed among Colab's preinstalled packages (``WATCHED``): on Colab, a change means
        a restart of the runtime, and for ipywidgets a version its front end does not support."""
        now = {k: v for k, v in versions(python).items() if k in WATCHED}
        changed = {k: f"{self.pins[k]} -> {v}" for k, v in now.items() if self.pins.get(k, v) != v}
        if changed:
            print(f"[{step}] WARNING: changed Colab's preinstalled packages: {changed}", flush=True)
        self.pins |= now
        return changed

    def sh(self, step: str, cmd: list[str], *, env: dict | None = None, cwd: Path | None = None,
           timeout: float = 3600) -> tuple[bool, float, str]:
        """Run ``cmd``, its output to the log; returns (succeeded, seconds, the output's tail)."""
        print(f"[{step}] $ {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
            ok, out = done.returncode == 0, done.stdout + done.stderr
        except subprocess.TimeoutExpired as err:
            ok, out = False, f"timed out after {timeout:.0f} s\n{err.stdout or ''}{err.stderr or ''}"
        seconds = time.perf_counter() - start
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(f"\n===== [{step}] {' '.join(cmd)} ({seconds:.1f} s, {'ok' if ok else 'FAILED'})\n{out}")
        return ok, seconds, "\n".join(line for line in out.splitlines() if "is ignored" not in line)[-4000:]

    def record(self, step: str, ok: bool, seconds: float, **details) -> None:
        self.results[step] = {"ok": ok, "seconds": round(seconds, 1), **details}
        extra = "; ".join(f"{k}: {v}" for k, v in details.items() if k != "output")
        print(f"[{step}] {'ok' if ok else 'FAILED'} in {seconds:.1f} s{'; ' + extra if extra else ''}", flush=True)
        if not ok and details.get("output"):
            print(details["output"][-3000:], flush=True)


def source_copy(dest: Path) -> Path:
    """This working tree's files (tracked, and untracked ones git does not ignore), as a clone would have them."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def versions(python: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\nout = {'python': sys.version.split()[0]}\n"
            f"for n in {VERSIONS!r}:\n    try:\n        out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError:\n        pass\nprint(json.dumps(out))")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}


def drive_chapter(notebook: str, report: str) -> int:
    """Run inside the Colab-like environment: execute ``notebook`` cell by cell in a fresh kernel (working
    directory: its folder), writing the kernel's start time, each cell's time and the time to the first
    figure to ``report`` (JSON) as it goes."""
    import nbclient
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(Path(notebook).parent)}})
    out = {"cells": [], "first_figure_s": None, "first_figure_cell": None, "error": None}
    start = time.perf_counter()

    def save():
        out["elapsed_s"] = round(time.perf_counter() - start, 2)
        Path(report).write_text(json.dumps(out, indent=1))

    with client.setup_kernel():
        out["kernel_start_s"] = round(time.perf_counter() - start, 2)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t = time.perf_counter()
            try:
                client.execute_cell(cell, i)
            except Exception as err:  # a failing cell or claim: recorded, and the run stops there
                out["error"] = f"cell {i}: {type(err).__name__}: {str(err)[-3000:]}"
                save()
                return 1
            out["cells"].append({"cell": i, "seconds": round(time.perf_counter() - t, 2),
                                 "source": cell.source.splitlines()[0][:80] if cell.source else ""})
            if out["first_figure_s"] is None and any("image/png" in o.get("data", {}) for o in cell.outputs):
                out["first_figure_s"] = round(time.perf_counter() - start, 2)
                out["first_figure_cell"] = i
            save()
    save()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="the interpreter (default: python3.13, Colab's, if one is found; else "
                                         "this one)")
    parser.add_argument("--torch", default="2.11.0")
    parser.add_argument("--torchvision", default="0.26.0")
    parser.add_argument("--numpy", default="2.1.*")
    parser.add_argument("--ipywidgets", default="7.7.1")
    parser.add_argument("--ipython", default="7.34.0", help="'' for no pin")
    parser.add_argument("--pin", action="append", default=[], metavar="REQ",
                        help="another requirement of the runtime, e.g. --pin 'pandas==2.1.*' (repeatable)")
    parser.add_argument("--hold", action="store_true",
                        help="keep the runtime's torch, torchvision and numpy through the book's install (a pip "
                             "constraints file): to test old versions that a plain install would upgrade")
    parser.add_argument("--venv", type=Path, help="where the environment goes (default: under /tmp); replaced")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"some of {','.join(STEPS)}")
    parser.add_argument("--report", type=Path, help="the JSON report (default: next to the environment)")
    parser.add_argument("--keep", action="store_true", help="keep the environment and the work folder")
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if unknown := set(steps) - set(STEPS):
        parser.error(f"unknown steps {sorted(unknown)}; choose among {STEPS}")
    python = args.python or find_python() or sys.executable
    pyver = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], check=True,
                           capture_output=True, text=True).stdout.strip()
    if pyver != "3.13":
        print(f"note: Colab runs Python 3.13; this run uses Python {pyver} ({python})", flush=True)
    tag = f"py{pyver}-torch{args.torch}"
    work = Path(tempfile.mkdtemp(prefix=f"colab-stack-{tag}-"))
    venv = args.venv or work / "venv"
    report = args.report or Path(tempfile.gettempdir()) / f"colab-stack-{tag}.json"
    run = Run(work / "log.txt")
    print(f"work folder {work} (log: {run.log}); report {report}", flush=True)
    vpy = venv / "bin" / "python"
    pip = [str(vpy), "-m", "pip", "install", "--disable-pip-version-check"]
    src = source_copy(work / "book-src")
    root = work / "book-root"  # a fresh book root: no trained model cached, as on a new Colab runtime
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOK_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env = {k: v for k, v in env.items() if k != "MPLBACKEND"}  # the kernels show figures inline, as on Colab
    env |= {"BOOK_ROOT": str(root), "BOOK_CLAIMS_DIR": str(work / "claims"), "TQDM_DISABLE": "1",
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    status = 0

    if "runtime" in steps or not vpy.exists():
        if venv.exists():
            shutil.rmtree(venv)
        ok, s1, out = run.sh("runtime", [python, "-m", "venv", str(venv)])
        pins = [f"torch=={args.torch}", f"torchvision=={args.torchvision}", f"numpy=={args.numpy}",
                f"ipywidgets=={args.ipywidgets}", "ipykernel>=6,<7", *COLAB_EXTRAS, *args.pin]
        if args.ipython:
            pins.append(f"ipython=={args.ipython}")
        ok2, s2, out2 = run.sh("runtime", [*pip, "--quiet", *pins]) if ok else (False, 0.0, out)
        if not ok2 and args.ipython:  # IPython 7.34 where it installs
            print(f"[runtime] ipython=={args.ipython} did not install with the rest; again without its pin", flush=True)
            pins.remove(f"ipython=={args.ipython}")
            ok2, s3, out2 = run.sh("runtime", [*pip, "--quiet", *pins])
            s2 += s3
        run.drift("runtime", vpy)
        run.record("runtime", ok2, s1 + s2, venv_s=round(s1, 1), packages_s=round(s2, 1), pins=" ".join(pins),
                   output=out2)
        if not ok2:
            return finish(run, report, vpy, 1)

    if "install" in steps:
        # the chapter's Colab cell: `%pip install -q ./book-src` (pip's cache off: a new runtime downloads all)
        hold = []
        if args.hold:
            held = {k: v for k, v in versions(vpy).items() if k in ("torch", "torchvision", "numpy")}
            (work / "hold.txt").write_text("".join(f"{k}=={v}\n" for k, v in held.items()))
            hold = ["-c", str(work / "hold.txt")]
        ok, s, out = run.sh("install", [*pip, "--quiet", "--no-cache-dir", *hold, "./book-src"], cwd=work)
        where = subprocess.run([str(vpy), "-c", "import utils; print(utils.__file__)"], cwd=work,
                               capture_output=True, text=True).stdout.strip()
        run.record("install", ok and "site-packages" in where, s, utils=where, changed=run.drift("install", vpy),
                   output=out)
        status |= not ok

    if "first-figure" in steps or "chapter" in steps:
        root.mkdir(exist_ok=True)
        chapter_report = work / "chapter1.json"
        ok, s, out = run.sh("chapter", [str(vpy), str(Path(__file__).resolve()), "--drive-chapter",
                                         str(src / "chapters" / "01_decision_boundaries.ipynb"), str(chapter_report)],
                            env=env, cwd=src / "chapters")
        result = json.loads(chapter_report.read_text()) if chapter_report.is_file() else {}
        if "first-figure" in steps:
            run.record("first-figure", result.get("first_figure_s") is not None, result.get("first_figure_s") or s,
                       kernel_start_s=result.get("kernel_start_s"), cell=result.get("first_figure_cell"),
                       cells_before=[(c["cell"], c["seconds"]) for c in result.get("cells", [])
                                     if c["cell"] <= (result.get("first_figure_cell") or -1)])
        if "chapter" in steps:
            slowest = sorted(result.get("cells", []), key=lambda c: -c["seconds"])[:4]
            run.record("chapter", ok, result.get("elapsed_s", s), error=result.get("error"),
                       slowest_cells=[(c["cell"], c["seconds"], c["source"]) for c in slowest], output=out)
        status |= not ok

    if "explorers" in steps:
        # the `pytest` script (not `python -m pytest`, which would put book-src first on sys.path): the
        # installed package is tested; the project's addopts name nbval, which Colab lacks
        ok, s, out = run.sh("explorers", [str(venv / "bin" / "pytest"), "-o", "addopts=", "-p", "no:cacheprovider",
                                          "-q", "tests/test_explorers.py"], env=env, cwd=src)
        run.record("explorers", ok, s, summary=out.strip().splitlines()[-1] if out.strip() else "", output=out)
        status |= not ok

    if "assignment" in steps:
        ok, s1, out = run.sh("assignment", [*pip, "--quiet", "otter-grader>=7,<8"], cwd=work)
        otter_changed = run.drift("assignment", vpy)
        colab_tests = work / "assignment-tests"
        ok2, s2, out2 = run.sh("assignment", [str(vpy), "assignments/build.py", "--public-tests", "ch1", "--dest",
                                              str(colab_tests)], env=env, cwd=src)
        ok3, s3, out3 = run.sh("assignment", [str(vpy), "assignments/grade.py", "--check", "ch1"], env=env, cwd=src)
        run.record("assignment", ok and ok2 and ok3, s1 + s2 + s3, otter_install_s=round(s1, 1),
                   public_tests=sorted(p.name for p in colab_tests.glob("*.py")), check_s=round(s3, 1),
                   otter_changed=otter_changed,
                   summary=" | ".join(out3.strip().splitlines()[-4:]), output="\n".join((out, out2, out3)))
        status |= not (ok and ok2 and ok3)

    code = finish(run, report, vpy, status)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return code


def finish(run: Run, report: Path, vpy: Path, status: int) -> int:
    found = versions(vpy) if vpy.exists() else {}
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
    total = time.perf_counter() - run.started
    summary = {"versions": found, "steps": {k: {kk: vv for kk, vv in v.items() if kk != "output"}
                                            for k, v in run.results.items()}, "total_s": round(total, 1)}
    report.write_text(json.dumps(summary, indent=1))
    print(f"{'all steps passed' if not status else 'SOME STEPS FAILED'} in {total:.0f} s; report: {report}",
          flush=True)
    return 1 if status else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--drive-chapter":
        sys.exit(drive_chapter(sys.argv[2], sys.argv[3]))
    sys.exit(main())
