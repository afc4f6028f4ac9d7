"""The chapters' shared setup: a model trained on a data set (:class:`Setup`), loading the setups a chapter
studies, and each chapter's first and last steps (:func:`start`, :func:`finish`).

Which setups a chapter studies is the chapter's own business (its module's ``SETUPS``, one tuple per scale;
the common choices are here). A chapter's parameters cell holds only assignments — ``SCALE``, ``SEED`` and a
``SIZES`` dict per scale — so that a reader (or papermill) can change them; the next cell calls
:func:`start`, which applies them without a kernel restart, and :func:`pick` to read this scale's sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from . import checks, config, plotting, records
from .data import Dataset, load_dataset
from .train import pretrained


@dataclass(frozen=True)
class Setup:
    """One model trained on one data set, e.g. ``Setup("mlp", "digits")``."""

    model: str
    dataset: str

    @property
    def key(self) -> str:
        """The name tables and figures use: ``"mlp on digits"``."""
        return f"{self.model} on {self.dataset}"


PerScale = dict[str, tuple[Setup, ...]]
DIGITS = (Setup("mlp", "digits"), Setup("cnn", "digits"))
WEIGHT_SPACE: PerScale = {"small": DIGITS, "full": (Setup("mlp", "mnist"), Setup("resnet18", "cifar10"))}
"""The setups of the weight-space chapters (3 on): an MLP and a CNN on the digits; the MNIST MLP and the
CIFAR-10 ResNet-18."""


def setups(per_scale: PerScale) -> tuple[Setup, ...]:
    """The setups of ``per_scale`` (a chapter's ``SETUPS``: one tuple of setups per scale) at the current scale."""
    if not isinstance(per_scale, dict) or set(per_scale) != set(config.SCALES) or not all(
            isinstance(v, tuple) and all(isinstance(s, Setup) for s in v) for v in per_scale.values()):
        raise ValueError(f"setups must be a dict with one tuple of Setup per scale {config.SCALES}, got {per_scale!r}")
    return per_scale[config.SCALE]


@dataclass
class Trained:
    """A trained model with its data: ``x``, ``y`` the test images it is scored on and ``x_fit``, ``y_fit``
    training images that adversaries are fit on (never the images they are scored on), all on the model's
    device."""

    setup: Setup
    data: Dataset
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    x_fit: torch.Tensor
    y_fit: torch.Tensor


def load(per_scale: PerScale, *, n_eval: int | None = None, n_fit: int = 512, seed: int | None = None,
         progress: bool = True) -> dict[str, Trained]:
    """The setups of ``per_scale`` at the current scale (:func:`setups`), each model trained (or loaded from
    the cache) with ``seed`` (default: the book's seed; another seed is an independent replication: other
    data split, weights and order) and moved to :func:`config.device`, with ``n_eval`` test images (None:
    all; a random choice drawn from the seed otherwise) and ``n_fit`` training images for fitting
    adversaries."""
    dev, out, datasets = config.device(), {}, {}
    n_fit = checks.integer("n_fit", n_fit)
    n_eval = None if n_eval is None else checks.integer("n_eval", n_eval)
    seed = config.SEED if seed is None else checks.integer("seed", seed, minimum=0)
    for s in setups(per_scale):
        if s.dataset not in datasets:
            datasets[s.dataset] = load_dataset(s.dataset, seed=seed)
        data = datasets[s.dataset]
        test = data
        if n_eval is not None and n_eval < len(data.y_test):
            test = data.subset(n_test=n_eval, generator=config.generator("evaluation images", s.dataset, seed=seed))
        model = pretrained(s.model, s.dataset, data=data, seed=seed, progress=progress).to(dev)
        out[s.key] = Trained(s, data, model, test.x_test.to(dev), test.y_test.to(dev),
                             data.x_train[:n_fit].to(dev), data.y_train[:n_fit].to(dev))
    return out


def start(chapter: str, *, scale: str | None = None, seed: int | None = None) -> config.Settings:
    """A chapter's first step: choose the scale and seed (``None``: from the environment; see
    :func:`config.use`), set the figure style, start recording the chapter's claims, print what runs where,
    and warn when the full scale is about to run without a GPU (with the time to expect)."""
    settings = config.use(scale, seed)
    plotting.set_style()
    records.begin(chapter)
    dev = config.device()
    gpu = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    print(f"scale: {settings.scale} · seed: {settings.seed} · device: {dev}{gpu}")
    config.warn_if_slow()
    return settings


def pick(sizes: dict[str, dict[str, Any]]) -> SimpleNamespace:
    """This scale's entry of a chapter's ``SIZES`` dict, as attributes: ``pick(SIZES).n_eval``."""
    if not isinstance(sizes, dict) or set(sizes) != set(config.SCALES):
        raise ValueError(f"sizes must be a dict with one entry per scale {config.SCALES}, got {sizes!r}")
    return SimpleNamespace(**sizes[config.SCALE])


def finish() -> None:
    """A chapter's last step: its record is complete (a record without it reads "incomplete")."""
    records.end()
