"""Execute chapter notebooks top to bottom, each in a fresh kernel, and report the time each took.

    python tools/run_chapters.py                      # every chapter, seed 0: outputs written back (commit them)
    python tools/run_chapters.py --seed 3 --discard   # a replication: only the claim records are kept
    python tools/run_chapters.py chapters/02_*.ipynb  # some chapters

Progress bars are switched off while executing (TQDM_DISABLE=1), and widget state and widget views are
dropped from the written notebooks (each explorer's output keeps its static figure). With ``--seed`` the
run sets ``BOOK_SEED`` for the kernels; claim records go to ``data/claims/<scale>/seed-<seed>/`` as usual
(or to ``--claims-dir``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(path: Path, *, write: bool, timeout: int) -> float:
    """Run one notebook in a fresh kernel (working directory: its folder); returns the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    # nbclient needs the widget state while it runs (an explorer draws into an Output widget); none is kept
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if write:
        without_widgets(nb)
        nbformat.write(nb, path)
    return seconds


def without_widgets(nb: nbformat.NotebookNode) -> None:
    """Drop widget state and widget views: a committed notebook shows each explorer's static figure, which
    its output carries too, until the reader runs the cell."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: chapters/*.ipynb")
    parser.add_argument("--seed", type=int, help="BOOK_SEED for the kernels (default: the environment's, else 0)")
    parser.add_argument("--scale", choices=("small", "full"), help="BOOK_SCALE for the kernels")
    parser.add_argument("--claims-dir", type=Path, help="where claim records go (BOOK_CLAIMS_DIR)")
    parser.add_argument("--discard", action="store_true", help="do not write the executed notebooks back")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    for name, value in (("BOOK_SEED", args.seed), ("BOOK_SCALE", args.scale), ("BOOK_CLAIMS_DIR", args.claims_dir)):
        if value is not None:
            os.environ[name] = str(Path(value).resolve()) if isinstance(value, Path) else str(value)
    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("*.ipynb"))
    total, failed = 0.0, []
    for path in notebooks:
        try:
            seconds = execute(path.resolve(), write=not args.discard, timeout=args.timeout)
        except nbclient.exceptions.CellExecutionError as err:
            failed.append(path.name)
            print(f"{path.name}: FAILED\n{str(err)[-2000:]}", flush=True)
            continue
        total += seconds
        print(f"{path.name}: {seconds:.1f} s", flush=True)
    print(f"total {total:.1f} s; seed {os.environ.get('BOOK_SEED', '0')}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
