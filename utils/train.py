"""Training and the book's trained models (and, for the chapters' convenience, the evaluation functions of
:mod:`utils.outputs`).

``pretrained(model, dataset)`` trains a model once with the book's recipe and caches its weights
(:mod:`utils.checkpoints`, under a hash of the whole configuration, the seed included); later calls and
later chapters load them after verifying them. Nothing here touches the caller's global random state or
process-wide settings: initial weights are drawn inside ``torch.random.fork_rng`` and the data order from
a local generator derived from the book's seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checkpoints, checks, config
from .data import Dataset, load_dataset
from .models import MODELS, build_model
from .outputs import evaluate, logits, mean_loss, predict  # their home is utils.outputs; named here as DESIGN's API

__all__ = ["RECIPES", "Recipe", "augment_crop_flip", "evaluate", "fit", "logits", "mean_loss", "predict", "pretrained"]

CACHE_FORMAT = 2  # bump when the training code changes what a recipe produces


def augment_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """CIFAR-style augmentation for a batch at once: random shifts of up to ``pad`` pixels (zero padding)
    and random horizontal flips, drawn on the batch's device with ``generator`` (on that device too)."""
    checks.tensor("x", x, min_dim=4)
    checks.generator("generator", generator)
    pad = checks.integer("pad", pad, minimum=0)
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=dev)
    rows = (torch.arange(h, device=dev) + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=dev) + dx[:, None])[:, None, None, :]
    batch, channel = torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[:, None, None]
    out = padded[batch, channel, rows, cols]
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
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
    mixed_precision: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
    target_loss: float | None = None,
) -> dict[str, list[float]]:
    """Minimize the mean cross-entropy over mini-batches of ``data``'s training set.

    ``optimizer="adam"`` uses Adam at a constant ``lr``; ``"sgd"`` uses SGD with Nesterov momentum 0.9
    and a one-cycle schedule peaking at ``lr``. The data order (and augmentation) is drawn from
    ``generator`` (default: one derived from the book's seed). ``mixed_precision`` runs forward and
    backward passes in bfloat16 autocast on a GPU (ignored on the CPU); convolutional models then use
    the channels-last memory layout. With ``target_loss`` training stops after the first epoch whose mean
    training loss is at most that (so that models of different sizes can be trained to the same loss;
    ``epochs`` is then the most it may take). Returns the per-epoch mean training loss and the final test
    accuracy; the model is left in eval mode on ``device`` (default :func:`config.device`).
    """
    checks.model("model", model, trainable=True)
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a utils.data.Dataset, got {type(data).__name__}")
    outputs, top = checks.classes(model, data.x_train), int(data.y_train.max())
    if top >= outputs:
        raise ValueError(f"data has labels up to {top} but the model outputs {outputs} logits (classes 0 … "
                         f"{outputs - 1}): build the model for this data, e.g. models.build_model(name, data)")
    epochs, batch_size = checks.integer("epochs", epochs), checks.integer("batch_size", batch_size)
    lr, weight_decay = checks.positive("lr", lr), checks.non_negative("weight_decay", weight_decay)
    target_loss = None if target_loss is None else checks.positive("target_loss", target_loss)
    checks.one_of("optimizer", optimizer, ("adam", "sgd"))
    if checks.flag("augment", augment) and len(data.input_shape) != 3:
        raise ValueError("augment=True needs image inputs (C, H, W)")
    dev = checks.device("device", device) if device is not None else config.device()
    gen = checks.generator("generator", generator) or config.generator("fit", data.name, device=dev)
    progress = checks.flag("progress", progress)
    amp = checks.flag("mixed_precision", mixed_precision) and dev.type == "cuda"
    model.to(dev, memory_format=torch.channels_last if amp and len(data.input_shape) == 3 else torch.preserve_format)
    model.train()
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    steps = -(-len(x) // batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt, sched = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay), None
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    history: dict[str, list[float]] = {"loss": []}
    # modules that draw from torch's global stream while training (dropout, noise injection) draw from a
    # copy seeded by the generator: reproducible, and the caller's stream is left as it was
    seed = int(torch.randint(2**62, (1,), generator=gen, device=gen.device))
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        bar = tqdm(range(epochs), desc=f"training on {data.name}", leave=False, **config.progress_options(progress))
        for _ in bar:
            history["loss"].append(_epoch(model, x, y, batch_size, opt, sched, gen, augment, amp))
            bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
            if target_loss is not None and history["loss"][-1] <= target_loss:
                break
    model.eval()
    history["test_accuracy"] = [evaluate(model, data.x_test.to(dev), data.y_test.to(dev))]
    return history


def _epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, opt: torch.optim.Optimizer,
           sched, gen: torch.Generator, augment: bool, amp: bool) -> float:
    """One pass over (x, y) in a random order; returns the mean training loss."""
    total = torch.zeros((), device=x.device)
    for idx in torch.randperm(len(x), generator=gen, device=x.device).split(batch_size):
        xb = augment_crop_flip(x[idx], gen) if augment else x[idx]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        total += loss.detach().float() * len(idx)  # summed on the device: no synchronisation per step
    return total.item() / len(x)


@dataclass(frozen=True)
class Recipe:
    """How a cached model is built and trained (everything that enters the cache key); ``width``
    overrides the channel width of a CNN or ResNet (for quick tests of the full-scale code)."""

    epochs: int
    lr: float
    batch_size: int = 128
    optimizer: str = "adam"
    weight_decay: float = 0.0
    augment: bool = False
    mixed_precision: bool = False
    width: int | None = None
    target_loss: float | None = None

    def __post_init__(self) -> None:
        checks.integer("epochs", self.epochs)
        checks.positive("lr", self.lr)
        checks.integer("batch_size", self.batch_size)
        checks.one_of("optimizer", self.optimizer, ("adam", "sgd"))
        checks.non_negative("weight_decay", self.weight_decay)
        checks.flag("augment", self.augment)
        checks.flag("mixed_precision", self.mixed_precision)
        if self.width is not None:
            checks.integer("width", self.width)
        if self.target_loss is not None:
            checks.positive("target_loss", self.target_loss)

    def training(self) -> dict:
        """The keywords of :func:`fit`."""
        return {k: v for k, v in asdict(self).items() if k != "width"}


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
                                    augment=True, mixed_precision=True),
}


def pretrained(
    model_name: str,
    dataset_name: str,
    *,
    seed: int | None = None,
    hidden: int | tuple[int, ...] | None = None,
    recipe: Recipe | None = None,
    data: Dataset | None = None,
    root: str | Path | None = None,
    progress: bool = True,
) -> nn.Module:
    """The model ``model_name`` trained on ``dataset_name`` with the book's recipe (or ``recipe``) and
    ``seed`` (default: the book's seed), from the cache in ``root`` (default :func:`config.checkpoints_dir`)
    when a verified checkpoint is there, else trained now and cached. Returned in eval mode on the CPU.

    ``data`` may pass the already loaded data set (``dataset_name``, or another data set of that name: the
    cache key covers a fingerprint of its contents, so different data never gets another's model). A
    checkpoint that cannot be used is reported once and retrained (and replaced, when the cache can be
    written: a read-only cache is used as it is).
    """
    checks.one_of("model_name", model_name, MODELS)
    checks.plain_name("dataset_name", dataset_name)
    seed = config.SEED if seed is None else checks.integer("seed", seed, minimum=0)
    if hidden is not None and not isinstance(hidden, int):
        checks.sequence("hidden", hidden)  # a list or tuple of widths (each checked by the model)
    progress = checks.flag("progress", progress)
    if recipe is None:
        if (model_name, dataset_name) not in RECIPES:
            known = ", ".join(f"{m}/{d}" for m, d in RECIPES)
            raise ValueError(f"no training recipe for {model_name}/{dataset_name}; known: {known}")
        recipe = RECIPES[model_name, dataset_name]
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a utils.train.Recipe, got {type(recipe).__name__}")
    if data is None:
        data = load_dataset(dataset_name, seed=seed)
    elif not isinstance(data, Dataset) or data.name != dataset_name:
        raise ValueError(f"data must be the Dataset {dataset_name!r}, got {getattr(data, 'name', data)!r}")
    key = {"model": model_name, "dataset": dataset_name, "seed": seed, "hidden": hidden, "recipe": asdict(recipe),
           "format": CACHE_FORMAT, "n_train": len(data.y_train), "data": data.fingerprint}

    def fresh() -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # initial weights from the seed; the caller's stream untouched
            torch.manual_seed(config.derived_seed("init", model_name, dataset_name, hidden, seed=seed))
            return build_model(model_name, data, hidden=hidden, width=recipe.width)

    def probe_accuracy(m: nn.Module) -> float:  # accuracy on (at most) the first 1,000 test images
        dev = config.device()
        return evaluate(m.to(dev), data.x_test[:1000].to(dev), data.y_test[:1000].to(dev))

    model = fresh()
    path = checkpoints.file_for(key, config.resolve(root) if root is not None else config.checkpoints_dir())
    cached = checkpoints.read(path, key, model)
    if cached is not None:
        model.load_state_dict(cached[0])
        accuracy = probe_accuracy(model)
        if cached[1] is not None and abs(accuracy - cached[1]) <= 0.01:
            return model.cpu().eval()
        checkpoints.report(path, f"they give test accuracy {accuracy:.3f}, not the {cached[1]:.3f} saved with them")
        model = fresh()
    gen = config.generator("fit", model_name, dataset_name, hidden, seed=seed, device=config.device())
    fit(model, data, generator=gen, progress=progress, **recipe.training())
    checkpoints.save(path, key, model, test_accuracy=probe_accuracy(model))
    return model.cpu().eval()
