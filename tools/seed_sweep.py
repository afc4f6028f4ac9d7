"""Replicate the book over several seeds and summarize every claim's bound values across them.

    python tools/seed_sweep.py                              # every chapter at seeds 0-9 (limits chosen)
    python tools/seed_sweep.py --seeds 10 11 12 --record-only  # fresh seeds, limits frozen
    python tools/seed_sweep.py --summary                    # summarize the records already there

Each seed runs every chapter in order, in fresh kernels, with BOOK_SEED set; the executed notebooks are
discarded and the records go to data/claims/<scale>/seed-<seed>/ (or --claims-dir). With --record-only, claims
that do not hold are recorded instead of stopping the chapter — for exploring where thresholds should lie, and
for the fresh seeds, where a broken limit is a finding the appendix reports. The summary lists, for every
bound, its values over the seeds 0–9 and 10–19, its limit and basis, the headroom the appendix checks, and
every prediction's outcomes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--claims-dir", type=Path, help="where the records go (BOOK_CLAIMS_DIR)")
    parser.add_argument("--record-only", action="store_true", help="record failed claims instead of stopping")
    parser.add_argument("--summary", action="store_true", help="only summarize the existing records")
    parser.add_argument("--chapters", nargs="*", help="chapter notebooks (default: all)")
    args = parser.parse_args()
    if args.claims_dir:
        os.environ["BOOK_CLAIMS_DIR"] = str(args.claims_dir.resolve())
    if args.record_only:
        os.environ["BOOK_CLAIMS"] = "record-only"
    if not args.summary:
        notebooks = args.chapters or [str(p) for p in sorted((ROOT / "chapters").glob("*.ipynb"))]
        for seed in args.seeds:
            subprocess.run([sys.executable, str(ROOT / "tools" / "run_chapters.py"), "--discard", "--seed", str(seed),
                            *notebooks], check=False)
    os.environ["BOOK_ROOT"] = str(ROOT)
    from utils import reproducibility

    print(reproducibility.table(reproducibility.CHOSEN, reproducibility.FRESH).to_string())
    print(reproducibility.predictions_table(reproducibility.CHOSEN + reproducibility.FRESH).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
