"""What the readiness report reads: labelled data (tensors or a ``DataLoader``), checked against the model, and —
for its command line — an architecture by name, its weights and images. Nothing read can run code: weights are
loaded with ``torch.load(..., weights_only=True)`` (tensors and plain containers only), images are decoded by
Pillow from one folder per class (no pickle, no symbolic links followed), and the book's data sets go through
their safe readers (:mod:`utils.datafiles`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checks, config, models
from .data import load_dataset

BOOK_MODELS = ("mlp", "cnn", "resnet18")
SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp", ".tif", ".tiff")
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "PPM", "WEBP", "TIFF")
"""The only decoders Pillow may use: a file named .png holding PostScript must not reach Ghostscript."""
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchvision's input normalization
MAX_PIXELS = 4096 * 4096


def labelled_data(data: Any, name: str = "data", *, max_images: int | None = None) -> tuple[torch.Tensor,
                                                                                           torch.Tensor]:
    """(x, y) from a pair of tensors or from an iterable of (x, y) batches (a ``DataLoader``), at most
    ``max_images`` of them, read without touching the caller's global random stream (a shuffling loader
    draws from it)."""
    if max_images is not None:
        max_images = checks.integer("max_images", max_images, minimum=4)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    elif isinstance(data, (str, bytes, dict, torch.Tensor)) or not hasattr(data, "__iter__"):
        raise TypeError(f"{name} must be a pair (x, y) of tensors or a DataLoader of (x, y) batches, got "
                        f"{type(data).__name__}")
    else:
        xs, ys = [], []
        with torch.random.fork_rng(devices=[]):
            for i, batch in enumerate(data):
                if not (isinstance(batch, (tuple, list)) and len(batch) == 2
                        and all(isinstance(t, torch.Tensor) for t in batch)):
                    raise TypeError(f"{name}: batch {i} is not a pair (x, y) of tensors, got {type(batch).__name__}")
                xs.append(batch[0])
                ys.append(batch[1])
                if max_images is not None and sum(map(len, xs)) >= max_images:
                    break
        if not xs:
            raise ValueError(f"{name} yielded no batches")
        x, y = torch.cat(xs), torch.cat(ys)
    if max_images is not None:
        x, y = x[:max_images], y[:max_images]
    checks.batch(x, y, x_name=f"{name} inputs", y_name=f"{name} labels")
    return x, y


def checked_data(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str,
                 input_range: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) on the model's device, if the model takes x and outputs logits (N, K ≥ 2) that y indexes, and x
    lies in ``input_range`` (None: not checked)."""
    z = checks.accepts(model, x, f"{name} inputs")
    if z.dim() != 2 or z.shape[1] < 2:
        raise ValueError(f"the model must output logits shaped (N, classes ≥ 2); on {name} it outputs "
                         f"{tuple(z.shape)}")
    checks.labels(f"{name} labels", y, len(x), z.shape[1])
    if input_range is not None:
        if not isinstance(input_range, (tuple, list)) or len(input_range) != 2:
            raise TypeError(f"input_range must be a pair (low, high) or None, got {input_range!r}")
        lo, hi = checks.number("input_range low", input_range[0]), checks.number("input_range high", input_range[1])
        if x.min() < lo - 1e-6 or x.max() > hi + 1e-6:
            raise ValueError(f"{name} inputs lie in [{x.min().item():.3g}, {x.max().item():.3g}], outside the model's "
                             f"input range [{lo:g}, {hi:g}] (the book's models take images in [0, 1] and normalize "
                             "inside); pass input_range=(low, high) for another convention, or None not to check")
    dev = checks.model_device(model)
    return x.to(dev), y.to(dev)


def _user_path(name: str, path: Any) -> Path:
    """A path a user typed, relative to the working directory (``~`` expanded)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"{name} must be a non-empty path (str or os.PathLike), got {path!r}")
    return Path(path).expanduser().resolve()


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (or the one under its ``state_dict`` or ``model`` key), loaded with
    ``weights_only=True``: tensors and plain containers only, so the file cannot run code."""
    path = _user_path("weights file", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"weights file {path} does not exist") from None
    except Exception as err:  # a file that is not a weights-only checkpoint (pickled code, corrupt, truncated)
        raise ValueError(f"weights file {path} cannot be read as tensors only ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"weights file {path} must hold a state dict (names → tensors), got {type(state).__name__}")
    return dict(state)


def _book_model(arch: str, state: dict[str, torch.Tensor], dataset: str) -> nn.Module:
    """The book's ``arch`` sized from its state dict (widths, classes) and the data set's input shape."""
    shape, get = SHAPES[dataset], state.__getitem__
    try:
        if arch == "mlp":
            linear = sorted((int(k.split(".")[1]), v) for k, v in state.items() if k.startswith("layers.")
                            and k.endswith(".weight"))
            return models.MLP(linear[0][1].shape[1], [w.shape[0] for _, w in linear[:-1]], linear[-1][1].shape[0],
                              mean=get("normalize.mean"), std=get("normalize.std"))
        if arch == "cnn":
            return models.SmallCNN(shape[0], get("head.3.weight").shape[0], shape[1], mean=get("normalize.mean"),
                                   std=get("normalize.std"), width=get("features.0.weight").shape[0])
        return models.resnet18(get("1.fc.weight").shape[0], width=get("1.conv1.weight").shape[0], mean=get("0.mean"),
                               std=get("0.std"))
    except (KeyError, IndexError) as err:
        raise ValueError(f"the weights are not those of the book's {arch!r} (no tensor {err} of the right "
                         "shape)") from None


def build(arch: str, state: dict[str, torch.Tensor], *, dataset: str | None = None,
          mean: tuple[float, ...] = IMAGENET[0], std: tuple[float, ...] = IMAGENET[1]) -> nn.Module:
    """The model ``arch`` with the weights ``state``, in eval mode, taking images in [0, 1]: one of the book's
    (``mlp``, ``cnn``, ``resnet18`` with ``dataset``, which fixes the input shape; they normalize inside) or a
    torchvision classification architecture (classes from the state dict), behind x ↦ (x − mean)/std."""
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if dataset is not None:
        checks.one_of("dataset", dataset, tuple(SHAPES))
        model = _book_model(checks.one_of("arch", arch, BOOK_MODELS), state, dataset)
    else:
        checks.one_of("arch", arch, tuple(known))
        if "1.conv1.weight" in state:
            raise ValueError("these are the weights of the book's ResNet-18: name its data set (--dataset cifar10)")
        classifier = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
        if not classifier:
            raise ValueError(f"the weights have no linear layer to read the number of classes from ({arch!r})")
        net = torchvision.models.get_model(arch, weights=None, num_classes=classifier[-1].shape[0])
        model = nn.Sequential(models.Normalize(torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)),
                              net)
        state = {f"1.{k}": v for k, v in state.items()} | {"0.mean": model[0].mean, "0.std": model[0].std}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"the weights do not fit {arch!r}: {str(err).splitlines()[1].strip()[:300]}") from None
    return model.eval()


def image_folder(root: str | os.PathLike, *, channels: int, size: int | None = None, max_images: int | None = None,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Labelled images from ``root``/<class>/<image> (classes in sorted order, as torchvision's ImageFolder):
    images in [0, 1] shaped (N, ``channels``, H, W), resized to ``size``×``size`` if given (otherwise all must
    share one size), at most ``max_images`` of them (a random choice from ``seed``). Only regular files with
    an image suffix are read, by Pillow's decoders of :data:`PIL_FORMATS` only; symbolic links are skipped, and
    an image that fails to decode names its file."""
    from PIL import Image

    root = _user_path("data folder", root)
    size = None if size is None else checks.integer("size", size)
    seed = checks.integer("seed", seed, minimum=0)
    if not root.is_dir():
        raise ValueError(f"data folder {root} does not exist or is not a folder")
    channels = checks.one_of("channels", channels, (1, 3))
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    files = [(p, i) for i, c in enumerate(classes) for p in sorted((root / c).iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.is_symlink()]
    if len(classes) < 2 or not files:
        raise ValueError(f"data folder {root} must hold one sub-folder of images per class (at least 2 classes); "
                         f"found classes {classes[:5]} and {len(files)} images")
    if max_images is not None and len(files) > checks.integer("max_images", max_images):
        keep = torch.randperm(len(files), generator=config.generator("image folder", seed=seed))[:max_images]
        keep = keep.sort().values
        files = [files[i] for i in keep.tolist()]
    images = []
    for path, _ in files:
        try:
            with Image.open(path, formats=PIL_FORMATS) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ValueError(f"{im.width}×{im.height} pixels is more than {MAX_PIXELS:,}")
                im = im.convert("L" if channels == 1 else "RGB")
                if size is not None:
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8).reshape(im.height, im.width, channels))
        except Exception as err:  # Pillow's errors: not an image, truncated, too large
            raise ValueError(f"image {path} cannot be read ({type(err).__name__}: {err})") from None
        if images[-1].shape != images[0].shape:
            raise ValueError(f"images differ in size ({files[0][0].name}: {images[0].shape[:2]}, {path.name}: "
                             f"{images[-1].shape[:2]}): pass a size to resize them to")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return x, torch.tensor([i for _, i in files], dtype=torch.int64), classes


def book_data(dataset: str, *, max_images: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split of one of the book's image data sets (its first ``max_images`` images)."""
    data = load_dataset(checks.one_of("dataset", dataset, tuple(SHAPES)), seed=seed)
    n = len(data.y_test) if max_images is None else checks.integer("max_images", max_images)
    return data.x_test[:n], data.y_test[:n]

