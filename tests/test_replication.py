"""A replication the thresholds were not set on: every chapter runs top to bottom at another seed — other data
split, initial weights, training order and random draws — and every one of its claims must hold.

The claims' limits were set from the records of seeds 0–9 (see the reproducibility appendix); this test uses
seed 11 (or ``$BOOK_TEST_SEED``), outside that set, so it checks the limits as predictions. Only the claims are
checked: the executed notebooks are discarded and their records go to a temporary folder.
"""

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
SEED = int(os.environ.get("BOOK_TEST_SEED", "11"))


@pytest.fixture(scope="module")
def claims_dir(tmp_path_factory):
    return tmp_path_factory.mktemp(f"claims-seed-{SEED}")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_claim_holds_at_another_seed(path, claims_dir, monkeypatch):
    monkeypatch.delenv("BOOK_ROOT")  # the repository itself: chapters, and cached models in data/checkpoints
    for name, value in {"BOOK_SEED": str(SEED), "BOOK_CLAIMS_DIR": str(claims_dir), "TQDM_DISABLE": "1"}.items():
        monkeypatch.setenv(name, value)
    nb = nbformat.read(path, as_version=4)
    try:
        nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} at BOOK_SEED={SEED}: {str(err)[-1500:]}")
