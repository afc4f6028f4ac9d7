"""The book's models. Every model takes inputs in [0, 1] and normalizes inside, x ↦ (x − μ)/σ, so that
perturbation budgets are always in pixel units."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .data import Dataset

MODELS = ("linear", "mlp", "cnn", "resnet18")


class Normalize(nn.Module):
    """x ↦ (x − mean)/std with per-channel (or per-feature) constants stored as buffers."""

    def __init__(self, mean: torch.Tensor | float = 0.0, std: torch.Tensor | float = 1.0) -> None:
        super().__init__()
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if (std <= 0).any():
            raise ValueError("std must be positive")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _check_positive(**values: int) -> None:
    """Raise ``ValueError`` unless every value is a positive integer."""
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")


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
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        _check_positive(in_features=in_features, num_classes=num_classes)
        _check_positive(**{f"hidden[{i}]": w for i, w in enumerate(widths)})
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
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
        _check_positive(in_channels=in_channels, num_classes=num_classes, image_size=image_size, width=width)
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
    num_classes: int = 10, *, mean: torch.Tensor | float = 0.0, std: torch.Tensor | float = 1.0
) -> nn.Sequential:
    """CIFAR-style ResNet-18: torchvision's, with a 3×3 stride-1 stem and no max-pool (for 32×32 inputs)."""
    from torchvision.models import resnet18 as tv_resnet18

    _check_positive(num_classes=num_classes)
    net = tv_resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return nn.Sequential(Normalize(mean, std), net)


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of images ``(N, C, H, W)`` shaped ``(C, 1, 1)``; per-feature for ``(N, D)``."""
    if x.dim() == 4:
        return x.mean(dim=(0, 2, 3)).view(-1, 1, 1), x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(-1, 1, 1)
    if x.dim() == 2:
        return x.mean(dim=0), x.std(dim=0).clamp_min(1e-3)
    raise ValueError(f"expected inputs shaped (N, C, H, W) or (N, D), got {tuple(x.shape)}")


def build_model(name: str, dataset: Dataset, *, hidden: int | Sequence[int] | None = None) -> nn.Module:
    """The book's standard model ``name`` (one of :data:`MODELS`) sized for ``dataset``, normalizing with
    the training set's statistics. ``hidden`` overrides the MLP's widths (default: 64, 64 for 2-D points,
    256, 256 for images)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
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
        return SmallCNN(shape[0], k, shape[1], mean=mean, std=std)
    if shape != (3, 32, 32):
        raise ValueError(f"resnet18 is built for 3×32×32 images; {dataset.name!r} has inputs {shape}")
    return resnet18(k, mean=mean, std=std)


def rescale_hidden_unit(model: MLP, layer: int, unit: int, factor: float) -> MLP:
    """A copy of an MLP computing the same function, with hidden unit ``unit`` of linear layer ``layer``
    multiplied by ``factor`` > 0 (its weight row and bias) and its outgoing weights divided by it: exact,
    because ReLU(c·a) = c·ReLU(a) for c > 0. Used to plant an outlier channel that per-tensor quantization
    cannot handle."""
    import copy

    linears = [m for m in model.layers if isinstance(m, nn.Linear)] if isinstance(model, MLP) else []
    if not 0 <= layer < len(linears) - 1:
        raise ValueError(f"layer must index a hidden linear layer (0 … {len(linears) - 2}), got {layer}")
    if not 0 <= unit < linears[layer].out_features or not factor > 0:
        raise ValueError(f"need 0 <= unit < {linears[layer].out_features} and factor > 0, got {unit}, {factor}")
    out = copy.deepcopy(model)
    first, second = [m for m in out.layers if isinstance(m, nn.Linear)][layer : layer + 2]
    with torch.no_grad():
        first.weight[unit] *= factor
        first.bias[unit] *= factor
        second.weight[:, unit] /= factor
    return out
