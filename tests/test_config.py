import random

import numpy as np
import pytest
import torch

from utils import budgets, config


def test_scale_defaults_to_small_and_validates(monkeypatch):
    assert config.read_scale() == "small"
    monkeypatch.setenv("BOOK_SCALE", " FULL ")
    assert config.read_scale() == "full"
    with pytest.raises(ValueError, match="scale \\(BOOK_SCALE\\) must be one of 'small', 'full'"):
        config.read_scale("huge")


def test_seed_comes_from_the_environment_and_validates(monkeypatch):
    assert config.read_seed() == 0
    monkeypatch.setenv("BOOK_SEED", "17")
    assert config.read_seed() == 17
    for bad in ("-1", "1.5", "x"):
        monkeypatch.setenv("BOOK_SEED", bad)
        with pytest.raises(ValueError, match="seed \\(BOOK_SEED\\) must be a non-negative integer"):
            config.read_seed()


def test_use_switches_scale_and_seed_without_a_restart(monkeypatch):
    assert (config.SCALE, config.SEED) == ("small", 0)
    settings = config.use("full", 3)
    assert (config.SCALE, config.SEED) == ("full", 3) == (settings.scale, settings.seed)
    monkeypatch.setenv("BOOK_SEED", "5")
    config.use()
    assert (config.SCALE, config.SEED) == ("small", 5)
    with pytest.raises(AttributeError):
        config.NOT_A_SETTING  # noqa: B018


def test_generators_follow_the_seed_and_the_key():
    def draw(*key, **kw):
        return torch.rand(3, generator=config.generator(*key, **kw)).tolist()

    assert draw("a") == draw("a") != draw("b")
    config.use(seed=1)
    assert draw("a") != draw("a", seed=0) == draw("a", seed=0)
    assert config.derived_seed("a", seed=1) == config.derived_seed("a")


def test_library_randomness_leaves_the_global_streams_alone():
    from utils import noise

    x = torch.rand(2, 5)
    state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()  # noqa: NPY002
    budgets.sample_sphere(4, (3,))
    noise.random_perturbation(x, 0.1)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and random.getstate() == py_state  # noqa: NPY002


def test_the_default_stream_restarts_with_use():
    first = torch.rand(2, generator=config.stream()).tolist()
    config.use()
    assert torch.rand(2, generator=config.stream()).tolist() == first


def test_set_seed_seeds_the_global_streams_when_asked():
    draws = []
    for _ in range(2):
        gen = config.set_seed(123)
        legacy = np.random.rand()  # noqa: NPY002 (set_seed seeds NumPy's legacy global stream)
        draws.append((random.random(), legacy, torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist()))
    assert draws[0] == draws[1]
    with pytest.raises(ValueError, match="seed must be an integer in"):
        config.set_seed(-1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        config.set_seed(1.5)


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
    monkeypatch.setenv("BOOK_CHECKPOINTS", str(tmp_path / "drive"))
    assert config.checkpoints_dir() == tmp_path / "drive"


def test_full_scale_on_the_cpu_warns_with_the_expected_time(monkeypatch):
    monkeypatch.setattr(config, "device", lambda: torch.device("cpu"))
    config.use("full")
    with pytest.warns(UserWarning, match="expect hours per chapter"):
        config.warn_if_slow()
