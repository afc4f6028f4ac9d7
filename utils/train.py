"""Training, evaluation and the cache of trained models.

``pretrained(model, dataset)`` trains a model once with the book's recipe and caches its weights in
``data/checkpoints`` under a hash of the whole configuration; later calls (and later chapters) load them
with ``torch.load(..., weights_only=True)``. A corrupt or mismatched cache file is retrained, with a
warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import config
from .data import Dataset, load_dataset
from .models import build_model

CACHE_FORMAT = 1  # bump when the training code changes what a recipe produces


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_pair(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """Validate a batch of inputs (and labels): tensors, at least one sample, matching lengths."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch shaped (N, ...), got shape {tuple(x.shape)}")
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.dim() != 1:
            raise ValueError("y must be a 1-D tensor of integer labels")
        if len(y) != len(x):
            raise ValueError(f"x and y must have the same number of samples, got {len(x)} and {len(y)}")


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
    """Model outputs z = f(x) in eval mode, computed in batches on the model's device, returned on x's."""
    _check_pair(x)
    was_training, dev = model.training, _model_device(model)
    model.eval()
    try:
        out = torch.cat([model(xb.to(dev)).to(x.device) for xb in x.split(batch_size)])
    finally:
        model.train(was_training)
    return out


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
    """Predicted labels argmax_k f(x)_k."""
    return logits(model, x, batch_size=batch_size).argmax(dim=1)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 4096) -> float:
    """Accuracy: the fraction of samples with argmax_k f(x)_k = y."""
    _check_pair(x, y)
    return (predict(model, x, batch_size=batch_size) == y.to(x.device)).float().mean().item()


def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 4096) -> float:
    """Mean cross-entropy L = (1/N) Σᵢ −log softmax(f(xᵢ))_{yᵢ}."""
    _check_pair(x, y)
    return F.cross_entropy(logits(model, x, batch_size=batch_size), y.to(x.device)).item()


def augment_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """CIFAR-style augmentation for a batch at once: random shifts of up to ``pad`` pixels (zero padding)
    and random horizontal flips."""
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(dev)
    rows = (torch.arange(h, device=dev) + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=dev) + dx[:, None])[:, None, None, :]
    batch, channel = torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[:, None, None]
    out = padded[batch, channel, rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    augment: bool = False,
    seed: int = 0,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> dict[str, list[float]]:
    """Minimize the mean cross-entropy over mini-batches of ``data``'s training set.

    ``optimizer="adam"`` uses Adam at a constant ``lr``; ``"sgd"`` uses SGD with Nesterov momentum 0.9
    and a one-cycle schedule peaking at ``lr``. Returns the per-epoch mean training loss and the final
    test accuracy. The model is left in eval mode on ``device`` (default :func:`config.device`).
    """
    for key, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")
    if not lr > 0 or weight_decay < 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got lr={lr}, weight_decay={weight_decay}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if augment and len(data.input_shape) != 3:
        raise ValueError("augment=True needs image inputs (C, H, W)")
    gen = config.set_seed(seed)
    dev = torch.device(device) if device is not None else config.device()
    model.to(dev).train()
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    steps = -(-len(x) // batch_size)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = None
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    history: dict[str, list[float]] = {"loss": []}
    bar = tqdm(range(epochs), desc=f"training on {data.name}", disable=not progress, leave=False)
    for _ in bar:
        order = torch.randperm(len(x), generator=gen).to(dev)
        total = 0.0
        for idx in order.split(batch_size):
            xb = augment_crop_flip(x[idx], gen) if augment else x[idx]
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.item() * len(idx)
        history["loss"].append(total / len(x))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    model.eval()
    history["test_accuracy"] = [evaluate(model, data.x_test.to(dev), data.y_test.to(dev))]
    return history


@dataclass(frozen=True)
class Recipe:
    """How a cached model is trained (everything that enters the cache key)."""

    epochs: int
    lr: float
    batch_size: int = 128
    optimizer: str = "adam"
    weight_decay: float = 0.0
    augment: bool = False


RECIPES: dict[tuple[str, str], Recipe] = {
    **{(m, d): Recipe(epochs=100, lr=1e-2, batch_size=100) for m in ("linear", "mlp")
       for d in ("moons", "circles", "spirals", "blobs")},
    ("linear", "digits"): Recipe(epochs=40, lr=1e-2, batch_size=64),
    ("mlp", "digits"): Recipe(epochs=40, lr=1e-3, batch_size=64),
    ("cnn", "digits"): Recipe(epochs=40, lr=1e-3, batch_size=64),
    ("mlp", "mnist"): Recipe(epochs=10, lr=1e-3),
    ("mlp", "fashion-mnist"): Recipe(epochs=15, lr=1e-3),
    ("cnn", "mnist"): Recipe(epochs=5, lr=1e-3),
    ("cnn", "fashion-mnist"): Recipe(epochs=10, lr=1e-3),
    ("resnet18", "cifar10"): Recipe(epochs=15, lr=0.1, batch_size=256, optimizer="sgd", weight_decay=5e-4,
                                    augment=True),
}


def _cache_file(key: dict, root: Path) -> Path:
    """``root/<model>-<dataset>-<sha256 of the configuration>.pt``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"{key['model']}-{key['dataset']}-{digest}.pt"


def _load_cached(model: nn.Module, path: Path, key: dict) -> bool:
    """Load weights saved for ``key`` into ``model``; False (with a warning) if the file is unusable."""
    if not path.is_file():
        return False
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") != key:
            raise ValueError("the file was saved for another configuration")
        model.load_state_dict(saved["state_dict"])
    except Exception as err:  # any unreadable or mismatched file is retrained, never a crash
        reason = (str(err).strip().splitlines() or [""])[0][:160]
        warnings.warn(f"cached weights {path.name} are unusable ({type(err).__name__}: {reason}); retraining",
                      stacklevel=3)
        return False
    return True


def pretrained(
    model_name: str,
    dataset_name: str,
    *,
    seed: int = 0,
    hidden: int | tuple[int, ...] | None = None,
    recipe: Recipe | None = None,
    data: Dataset | None = None,
    root: str | Path = "data/checkpoints",
    progress: bool = True,
) -> nn.Module:
    """The model ``model_name`` trained on ``dataset_name`` with the book's recipe (or ``recipe``), from
    the cache when it is there, else trained now and cached. Returned in eval mode on the CPU.

    ``data`` may pass the already loaded data set (it must be ``dataset_name``).
    """
    if recipe is None:
        if (model_name, dataset_name) not in RECIPES:
            known = ", ".join(f"{m}/{d}" for m, d in RECIPES)
            raise ValueError(f"no training recipe for {model_name}/{dataset_name}; known: {known}")
        recipe = RECIPES[model_name, dataset_name]
    if data is None:
        data = load_dataset(dataset_name, seed=seed)
    elif data.name != dataset_name:
        raise ValueError(f"data is {data.name!r} but dataset_name is {dataset_name!r}")
    config.set_seed(seed)  # the initial weights must not depend on what ran before
    model = build_model(model_name, data, hidden=hidden)
    key = {"model": model_name, "dataset": dataset_name, "seed": seed, "hidden": hidden,
           "recipe": asdict(recipe), "format": CACHE_FORMAT, "n_train": len(data.y_train)}
    path = _cache_file(key, config.resolve(root))
    if not _load_cached(model, path, key):
        fit(model, data, seed=seed, progress=progress, **asdict(recipe))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"key": key, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, tmp)
        os.replace(tmp, path)
    return model.cpu().eval()
