"""Shared fixtures: every test runs with its own book root, so caches and records never touch data/."""

import pytest
import torch


@pytest.fixture(autouse=True)
def isolated_root(tmp_path, monkeypatch):
    """Point the book's root (data/, checkpoints, claim records) at a fresh temporary folder."""
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    torch.manual_seed(0)
    return tmp_path
