"""The chapters' shared setup: which models on which data at which scale, loading them, and each
chapter's first step (:func:`start`).

A chapter's parameters cell holds only assignments — ``SCALE``, ``SEED`` and a ``SIZES`` dict per scale —
so that a reader (or papermill) can change them; the next cell calls :func:`start`, which applies them
without a kernel restart, and :func:`pick` to read this scale's sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from . import checks, claims, config, plotting
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


_DIGITS = (Setup("mlp", "digits"), Setup("cnn", "digits"))
SETUPS: dict[str, dict[str, tuple[Setup, ...]]] = {
    "small": {"inputs": _DIGITS, "weights": _DIGITS, "widths": (Setup("mlp", "digits"),),
              "summary": (Setup("mlp", "digits"),)},
    "full": {"inputs": (Setup("mlp", "mnist"), Setup("mlp", "fashion-mnist"), Setup("resnet18", "cifar10")),
             "weights": (Setup("mlp", "mnist"), Setup("resnet18", "cifar10")), "widths": (Setup("mlp", "mnist"),),
             "summary": (Setup("mlp", "mnist"),)},
}
"""For each scale: the setups of the input-space chapter (2), of the weight-space chapters (3–5), of the
width sweep (chapter 3, its data set) and of the synthesis's summary figure (chapter 6)."""


def setups(role: str) -> tuple[Setup, ...]:
    """The setups of ``role`` (one of ``inputs``, ``weights``, ``widths``, ``summary``) at the current scale."""
    return SETUPS[config.SCALE][checks.one_of("role", role, tuple(SETUPS["small"]))]


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


def load(role: str, *, n_eval: int | None = None, n_fit: int = 512, seed: int | None = None,
         progress: bool = True) -> dict[str, Trained]:
    """The setups of ``role``, each model trained (or loaded from the cache) with ``seed`` (default: the
    book's seed; another seed is an independent replication: other data split, weights and order) and
    moved to :func:`config.device`, with ``n_eval`` test images (None: all; a random choice drawn from the
    seed otherwise) and ``n_fit`` training images for fitting adversaries."""
    dev, out, datasets = config.device(), {}, {}
    n_fit = checks.integer("n_fit", n_fit)
    seed = config.SEED if seed is None else checks.integer("seed", seed, minimum=0)
    for s in setups(role):
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
    and warn when the full scale is about to run without a GPU."""
    settings = config.use(scale, seed)
    plotting.set_style()
    claims.begin_chapter(chapter)
    print(f"scale: {settings.scale} · seed: {settings.seed} · device: {config.device()}")
    config.warn_if_slow()
    return settings


def pick(sizes: dict[str, dict[str, Any]]) -> SimpleNamespace:
    """This scale's entry of a chapter's ``SIZES`` dict, as attributes: ``pick(SIZES).n_eval``."""
    if not isinstance(sizes, dict) or set(sizes) != set(config.SCALES):
        raise ValueError(f"sizes must be a dict with one entry per scale {config.SCALES}, got {sizes!r}")
    return SimpleNamespace(**sizes[config.SCALE])
