"""Shared fixtures and session set-up.

- Every unit test runs with its own book root, so caches and records never touch ``data/``.
- The notebook checks (nbval) write their claim records into a temporary folder (``BOOK_CLAIMS_DIR``),
  seeded with the committed records so that the synthesis chapter finds every chapter's record: running
  the tests never modifies a tracked file. Progress bars are off (``TQDM_DISABLE``) in the kernels.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Before any kernel starts: redirect claim records to a copy of the committed ones."""
    if "BOOK_CLAIMS_DIR" not in os.environ:
        folder = Path(tempfile.mkdtemp(prefix="book-claims-"))
        shutil.copytree(ROOT / "data" / "claims", folder, dirs_exist_ok=True)
        os.environ["BOOK_CLAIMS_DIR"] = str(folder)
        config._book_claims_dir = folder
    os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_unconfigure(config):
    folder = getattr(config, "_book_claims_dir", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("BOOK_CLAIMS_DIR", None)


@pytest.fixture(autouse=True)
def isolated_root(tmp_path, monkeypatch):
    """Point the book's root (data/, checkpoints, claim records) at a fresh temporary folder, at the
    default scale and seed."""
    from utils import config

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    monkeypatch.delenv("BOOK_CLAIMS_DIR", raising=False)
    monkeypatch.delenv("BOOK_CHECKPOINTS", raising=False)
    monkeypatch.delenv("BOOK_SCALE", raising=False)
    monkeypatch.delenv("BOOK_SEED", raising=False)
    config.use()
    torch.manual_seed(0)
    yield tmp_path
    config.use("small", 0)


@pytest.fixture(scope="session")
def digits_mlp():
    """A one-hidden-layer MLP (32 units) trained for 10 epochs on the digits at seed 0, in eval mode, and its
    data set; shared by the weight-space tests, which must leave it as they found it."""
    from utils import train
    from utils.data import load_dataset
    from utils.models import build_model

    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("mlp", data, hidden=(32,))
    train.fit(model, data, epochs=10, lr=3e-3, batch_size=64, progress=False, device="cpu",
              generator=torch.Generator().manual_seed(0))
    return model.eval(), data
