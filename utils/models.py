"""The book's models. Every model takes inputs in [0, 1] and normalizes inside, x ↦ (x − μ)/σ, so that
perturbation budgets are always in pixel units."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import checks
from .data import Dataset

MODELS = ("linear", "mlp", "cnn", "resnet18")


class Normalize(nn.Module):
    """x ↦ (x − mean)/std with per-channel (or per-feature) constants stored as buffers."""

    def __init__(self, mean: torch.Tensor | float = 0.0, std: torch.Tensor | float = 1.0) -> None:
        super().__init__()
        for name, value in (("mean", mean), ("std", std)):
            if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
                raise TypeError(f"{name} must be a number or a tensor, got {value!r}")
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        checks.tensor("mean", mean)
        if not torch.isfinite(std).all() or (std <= 0).any():
            raise ValueError("std must be finite and positive everywhere")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLP(nn.Module):
    """Fully connected ReLU network: flatten, normalize, then Linear–ReLU blocks and a linear read-out.

    ``hidden`` is one width or a sequence of widths; ``hidden=()`` gives a linear classifier
    z = W x + b.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Sequence[int],
        num_classes: int,
        *,
        mean: torch.Tensor | float = 0.0,
        std: torch.Tensor | float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (int, Sequence)):
            raise TypeError(f"hidden must be an integer or a sequence of integers, got {hidden!r}")
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        checks.integer("in_features", in_features)
        checks.integer("num_classes", num_classes, minimum=2)
        widths = [checks.integer(f"hidden[{i}]", w) for i, w in enumerate(widths)]
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = []
        for a, b in zip([in_features, *widths], widths, strict=False):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1] if widths else in_features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalize(x).flatten(1))


class SmallCNN(nn.Module):
    """Two 3×3 conv–ReLU–max-pool blocks (``width``, 2·``width`` channels) and a two-layer head."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        *,
        width: int = 16,
        mean: torch.Tensor | float = 0.0,
        std: torch.Tensor | float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("image_size", image_size), ("width", width)):
            checks.integer(name, value)
        checks.integer("num_classes", num_classes, minimum=2)
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 (two 2×2 poolings), got {image_size}")
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


def resnet18(
    num_classes: int = 10, *, width: int = 64, mean: torch.Tensor | float = 0.0, std: torch.Tensor | float = 1.0
) -> nn.Sequential:
    """CIFAR-style ResNet-18: torchvision's, with a 3×3 stride-1 stem and no max-pool (for 32×32 inputs).
    ``width`` is the first stage's number of channels (64 in the original; the four stages have width,
    2·width, 4·width, 8·width) — a narrower network of the same structure for quick tests."""
    from torchvision.models.resnet import BasicBlock, ResNet

    checks.integer("num_classes", num_classes, minimum=2)
    checks.integer("width", width)
    net = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    if width != 64:  # rebuild the stages at the asked width (torchvision fixes 64, 128, 256, 512)
        net.inplanes = width
        net.layer1, net.layer2, net.layer3, net.layer4 = (
            net._make_layer(BasicBlock, width * 2**i, 2, stride=1 if i == 0 else 2) for i in range(4))
        net.bn1 = nn.BatchNorm2d(width)
        net.fc = nn.Linear(8 * width, num_classes)
    net.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    for m in net.modules():  # torchvision's initialization, for the replaced layers too
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(Normalize(mean, std), net)


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of images ``(N, C, H, W)`` shaped ``(C, 1, 1)``; per-feature for ``(N, D)``."""
    checks.batch(x)
    if x.dim() in (2, 4) and x.numel() // (x.shape[1] if x.dim() > 1 else 1) < 2:
        raise ValueError(f"x must hold at least 2 values per channel or feature to estimate a standard deviation, "
                         f"got shape {tuple(x.shape)}")
    if x.dim() == 4:
        return x.mean(dim=(0, 2, 3)).view(-1, 1, 1), x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(-1, 1, 1)
    if x.dim() == 2:
        return x.mean(dim=0), x.std(dim=0).clamp_min(1e-3)
    raise ValueError(f"x must be shaped (N, C, H, W) or (N, D), got {tuple(x.shape)}")


def build_model(
    name: str, dataset: Dataset, *, hidden: int | Sequence[int] | None = None, width: int | None = None
) -> nn.Module:
    """The book's standard model ``name`` (one of :data:`MODELS`) sized for ``dataset``, normalizing with
    the training set's statistics. ``hidden`` overrides the MLP's widths (default: 64, 64 for 2-D points,
    256, 256 for images); ``width`` the CNN's or ResNet's channel width (default 16 and 64)."""
    checks.one_of("name", name, MODELS)
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a utils.data.Dataset, got {type(dataset).__name__}")
    mean, std = channel_stats(dataset.x_train)
    shape, k = dataset.input_shape, dataset.num_classes
    if name in ("linear", "mlp"):
        if name == "linear":
            hidden = ()
        elif hidden is None:
            hidden = (64, 64) if len(shape) == 1 else (256, 256)
        return MLP(int(torch.tensor(shape).prod()), hidden, k, mean=mean, std=std)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"{name!r} needs square images (C, H, H); {dataset.name!r} has inputs {shape}")
    if name == "cnn":
        return SmallCNN(shape[0], k, shape[1], width=width or 16, mean=mean, std=std)
    if shape != (3, 32, 32):
        raise ValueError(f"resnet18 is built for 3×32×32 images; {dataset.name!r} has inputs {shape}")
    return resnet18(k, width=width or 64, mean=mean, std=std)


def rescale_hidden_unit(model: MLP, layer: int, unit: int, factor: float) -> MLP:
    """A copy of an MLP computing the same function, with hidden unit ``unit`` of linear layer ``layer``
    multiplied by ``factor`` > 0 (its weight row and bias) and its outgoing weights divided by it: exact,
    because ReLU(c·a) = c·ReLU(a) for c > 0. Used to plant an outlier channel that per-tensor quantization
    cannot handle."""
    import copy

    if not isinstance(model, MLP):
        raise TypeError(f"model must be a utils.models.MLP, got {type(model).__name__}")
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        raise ValueError("model must have at least one hidden layer")
    layer = checks.integer("layer", layer, minimum=0, maximum=len(linears) - 2)
    unit = checks.integer("unit", unit, minimum=0, maximum=linears[layer].out_features - 1)
    factor = checks.positive("factor", factor)
    out = copy.deepcopy(model)
    first, second = [m for m in out.layers if isinstance(m, nn.Linear)][layer : layer + 2]
    with torch.no_grad():
        first.weight[unit] *= factor
        first.bias[unit] *= factor
        second.weight[:, unit] /= factor
    return out
