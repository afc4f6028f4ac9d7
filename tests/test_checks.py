import numpy as np
import pytest
import torch
from torch import nn

from utils import checks


def test_integers_are_checked_for_type_and_range():
    assert checks.integer("n", np.int64(3)) == 3
    with pytest.raises(TypeError, match="n must be an integer, got 2.5"):
        checks.integer("n", 2.5)
    with pytest.raises(TypeError, match="n must be an integer, got True"):
        checks.integer("n", True)
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, inf\], got 0"):
        checks.integer("n", 0)
    with pytest.raises(ValueError, match=r"bit must be an integer in \[0, 7\], got 8"):
        checks.integer("bit", 8, minimum=0, maximum=7)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_positive_numbers_must_be_finite_and_positive(bad):
    with pytest.raises(ValueError, match="eps must be a finite number in"):
        checks.positive("eps", bad)


def test_numbers_reject_strings_and_accept_one_element_tensors():
    with pytest.raises(TypeError, match="lr must be a real number, got '0.1'"):
        checks.positive("lr", "0.1")
    assert checks.probability("p", torch.tensor(0.25)) == 0.25
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0.0, 1.0\]"):
        checks.probability("p", 1.5)


def test_names_generators_and_flags():
    assert checks.one_of("norm", "l2", ("l2", "linf")) == "l2"
    with pytest.raises(ValueError, match="norm must be one of 'l2', 'linf'; got 'l1'"):
        checks.one_of("norm", "l1", ("l2", "linf"))
    with pytest.raises(ValueError, match="norm must be one of"):
        checks.one_of("norm", ["l2"], ("l2", "linf"))
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        checks.generator("generator", np.random.default_rng(0))
    assert checks.flag("lines", np.bool_(True)) is True
    with pytest.raises(TypeError, match="lines must be True or False"):
        checks.flag("lines", "yes")


def test_batches_and_labels():
    x = torch.rand(4, 3)
    checks.batch(x, torch.tensor([0, 1, 2, 1]), num_classes=3)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        checks.batch(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="x must not contain NaN"):
        checks.batch(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="x must hold at least one sample"):
        checks.batch(torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        checks.batch(x + 1, unit_box=True)
    with pytest.raises(TypeError, match="y must hold int64 class labels"):
        checks.batch(x, torch.zeros(4))
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 3\), got values from 0 to 5"):
        checks.batch(x, torch.tensor([0, 1, 2, 5]), num_classes=3)
    with pytest.raises(ValueError, match="y must be a 1-D tensor with one label per sample"):
        checks.batch(x, torch.zeros(3, dtype=torch.int64))


def test_eval_mode_switches_every_submodule_and_restores_its_own_mode():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.5))
    net.train()
    net[2].eval()
    with checks.eval_mode(net):
        assert not any(m.training for m in net.modules())
    assert net.training and net[1].training and not net[2].training


def test_models_and_their_parameters():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        checks.model("model", lambda x: x)
    with pytest.raises(ValueError, match="model must have at least one trainable parameter"):
        checks.model("model", nn.Identity(), trainable=True)
    assert checks.model_device(nn.Identity()) == torch.device("cpu")
