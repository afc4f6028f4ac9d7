import random

import numpy as np
import pytest
import torch

from utils import config


def test_scale_defaults_to_small_and_validates(monkeypatch):
    monkeypatch.delenv("BOOK_SCALE", raising=False)
    assert config.read_scale() == "small"
    monkeypatch.setenv("BOOK_SCALE", " FULL ")
    assert config.read_scale() == "full"
    with pytest.raises(ValueError, match="BOOK_SCALE must be one of"):
        config.read_scale("huge")


def test_set_seed_makes_python_numpy_and_torch_repeat():
    draws = []
    for _ in range(2):
        gen = config.set_seed(123)
        legacy = np.random.rand()  # noqa: NPY002 (set_seed seeds NumPy's legacy global stream)
        draws.append((random.random(), legacy, torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist()))
    assert draws[0] == draws[1]
    assert torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_set_seed_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        config.set_seed(bad)


def test_device_is_a_torch_device():
    assert isinstance(config.device(), torch.device)


def test_project_root_finds_the_toc_or_uses_the_env(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    (tmp_path / "chapters").mkdir()
    monkeypatch.delenv("BOOK_ROOT")
    monkeypatch.chdir(tmp_path / "chapters")
    assert config.project_root() == tmp_path.resolve()
    assert config.resolve("data") == tmp_path.resolve() / "data"
    assert config.resolve(tmp_path / "x") == tmp_path / "x"
