import pytest
import torch

from utils import models
from utils.data import load_dataset


@pytest.mark.parametrize("name", ["linear", "mlp", "cnn"])
def test_digits_models_give_one_logit_per_class(name):
    ds = load_dataset("digits")
    model = models.build_model(name, ds)
    assert model(ds.x_test[:5]).shape == (5, 10)


def test_toy_mlp_and_linear_sizes():
    ds = load_dataset("moons")
    mlp = models.build_model("mlp", ds)
    assert [m.out_features for m in mlp.layers if isinstance(m, torch.nn.Linear)] == [64, 64, 2]
    linear = models.build_model("linear", ds)
    assert sum(isinstance(m, torch.nn.Linear) for m in linear.layers) == 1


def test_resnet18_is_cifar_style_and_can_be_narrowed():
    net = models.resnet18(10)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert net[1].conv1.kernel_size == (3, 3) and net[1].conv1.stride == (1, 1)
    assert isinstance(net[1].maxpool, torch.nn.Identity)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962  # ResNet-18 with a 3×3 stem and 10 classes
    narrow = models.resnet18(10, width=8)
    assert narrow(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert [m.out_channels for m in narrow.modules() if isinstance(m, torch.nn.Conv2d)][-1] == 64
    assert len(list(narrow.modules())) == len(list(net.modules()))  # the same structure


def test_normalization_lives_inside_the_model():
    mlp = models.MLP(3, 4, 2, mean=torch.tensor([0.5, 0.5, 0.5]), std=torch.tensor([0.1, 0.2, 0.4]))
    x = torch.rand(6, 3)
    expected = mlp.layers((x - 0.5) / torch.tensor([0.1, 0.2, 0.4]))
    assert torch.allclose(mlp(x), expected)


def test_bad_arguments_are_rejected_clearly():
    with pytest.raises(ValueError, match="name must be one of 'linear', 'mlp', 'cnn', 'resnet18'; got 'vit'"):
        models.build_model("vit", load_dataset("moons"))
    with pytest.raises(ValueError, match="needs square images"):
        models.build_model("cnn", load_dataset("moons"))
    with pytest.raises(ValueError, match="resnet18 is built for 3×32×32"):
        models.build_model("resnet18", load_dataset("digits"))
    with pytest.raises(ValueError, match="hidden\\[1\\] must be an integer in \\[1, inf\\], got 0"):
        models.MLP(2, (4, 0), 2)
    with pytest.raises(ValueError, match="num_classes must be an integer in \\[2, inf\\]"):
        models.MLP(2, 4, 1)
    with pytest.raises(ValueError, match="multiple of 4"):
        models.SmallCNN(1, 10, 10)
    for bad in (0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="std must be finite and positive"):
            models.Normalize(0.0, bad)


def test_rescale_hidden_unit_preserves_the_function():
    from utils.models import MLP, rescale_hidden_unit

    model = MLP(6, (8, 8), 3).eval()
    x = torch.rand(20, 6)
    planted = rescale_hidden_unit(model, 1, 2, 30.0)
    assert torch.allclose(planted(x), model(x), atol=1e-5)
    assert planted.layers[2].weight[2].abs().max() > 10 * model.layers[2].weight[2].abs().max()
    with pytest.raises(ValueError, match="layer must be an integer in \\[0, 1\\], got 2"):
        rescale_hidden_unit(model, 2, 0, 2.0)
    for bad in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="factor must be a finite number in \\(0.0, inf\\)"):
            rescale_hidden_unit(model, 0, 0, bad)
