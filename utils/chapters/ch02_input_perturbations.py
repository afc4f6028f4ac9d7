"""Chapter 2, random vs adversarial input perturbations: the models it studies, and the grid of noisy and
attacked images its explorer redraws."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import nn

from .. import checks, explorers, plotting
from ..attacks import pgd
from ..budgets import NORMS
from ..geometry import logit_margin
from ..noise import random_perturbation
from ..outputs import logits
from ..setups import DIGITS, Setup

SETUPS = {"small": DIGITS,
          "full": (Setup("mlp", "mnist"), Setup("mlp", "fashion-mnist"), Setup("resnet18", "cifar10"))}
"""Digits at the small scale (d = 64); MNIST, Fashion-MNIST (d = 784) and CIFAR-10 (d = 3,072) at the full."""


def budget_grid(
    model: nn.Module, images: torch.Tensor, eps_values: dict[str, Sequence[float]], *,
    generator: torch.Generator | None = None,
) -> dict:
    """For a few ``images`` (in [0, 1]) and each norm and budget of ``eps_values`` ({"l2": [...], "linf":
    [...]}): the images with random noise (uniform on the sphere) and with 20-step PGD of that budget, and
    every version's prediction and logit margin — what :func:`explorer` shows."""
    checks.batch(images, unit_box=True)
    z0 = logits(model, images)
    labels = z0.argmax(1)
    grid = {"x": images.cpu(), "pred": labels.cpu(), "margin": logit_margin(z0).cpu()}
    for norm, values in eps_values.items():
        checks.one_of("norm", norm, NORMS)
        for i, eps in enumerate(values):
            eps = checks.positive(f"eps_values[{norm!r}][{i}]", eps)
            noisy = images + random_perturbation(images, eps, norm=norm, generator=generator)
            attacked = images + pgd(model, images, labels, eps, norm=norm, generator=generator)
            for name, version in (("noise", noisy), ("pgd", attacked)):
                z = logits(model, version)
                grid[norm, i, name] = (version.cpu(), z.argmax(1).cpu(), logit_margin(z).cpu())
    return grid


def explorer(grid: dict, curves: pd.DataFrame, eps_values: dict[str, list[float]], key: str) -> explorers.Explorer:
    """Chapter 2: choose an image, a norm and a budget ε; see the image with random noise and with PGD of
    that budget, their predictions and margins (from :func:`budget_grid`), and where ε sits on
    the model's flip-rate curves (``curves`` of :func:`perturbations.flip_curves`, model ``key``)."""
    import ipywidgets as widgets

    n = len(grid["x"])
    controls = {"image": widgets.IntSlider(0, 0, n - 1, description="image", continuous_update=False),
                "norm": widgets.ToggleButtons(options=list(eps_values), value="l2", description="norm"),
                "step": widgets.IntSlider(len(eps_values["l2"]) // 2, 0, min(map(len, eps_values.values())) - 1,
                                          description="budget step", continuous_update=False)}

    def images(axes, image: int, norm: str, step: int) -> None:
        eps = eps_values[norm][step]
        plotting.show_image(axes[0], grid["x"][image].numpy(),
                            title=f"image: {grid['pred'][image]} (margin {grid['margin'][image]:.1f})")
        for ax, name in zip(axes[1:3], ("noise", "pgd"), strict=True):
            x, pred, margin = grid[norm, step, name]
            plotting.show_image(ax, x[image].clamp(0, 1).numpy(), title=f"+ {'noise' if name == 'noise' else 'PGD'}, "
                                f"ε = {eps:g}: {pred[image]} ({margin[image]:.1f})")

    def draw(axes, image: int, norm: str, step: int) -> None:
        images(axes, image, norm, step)
        sub = curves[(curves["model"] == key) & (curves["norm"] == norm)]
        for method, s in sub[sub["method"].isin(["pgd", "sphere"])].groupby("method"):
            axes[3].semilogx(s["eps"], s["flip_rate"], "o-", label="PGD" if method == "pgd" else "noise")
        axes[3].axvline(eps_values[norm][step], color="k", ls=":")
        axes[3].set(xlabel=f"budget ε ({norm})", ylabel="fraction flipped", title=key)
        axes[3].legend(fontsize="small")

    def static() -> plt.Figure:
        steps = range(0, len(eps_values["l2"]), max(1, len(eps_values["l2"]) // 4))
        fig, axes = plotting.subplots(3, len(steps), width=2.5, height=2.6, layout="constrained")
        for row, step in zip(axes, steps, strict=True):
            images(row, 0, "l2", step)
        fig.suptitle("the same L2 budget: random noise and PGD")
        return fig

    return explorers.Explorer(controls, draw, static, panels=4, size=(3.0, 3.0))
