"""Chapter 3, weight-space perturbations: the models it studies and the loss slices its explorer redraws."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .. import checks, curvature, explorers, weights
from ..setups import WEIGHT_SPACE, Setup

SETUPS = WEIGHT_SPACE
WIDTHS = {"small": (Setup("mlp", "digits"),), "full": (Setup("mlp", "mnist"),)}
"""The data set of the width sweep (§3.5), by scale."""


def slice_grid(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, directions: dict[str, weights.Direction], *,
    n_points: int = 60,
) -> dict:
    """Loss along θ + α·d for each named direction d, on a grid of α dense near 0 (±geometric from 10⁻³ to 1,
    and 0), with the second-order prediction L(θ) + α·gᵀd + ½α²·dᵀHd — what :func:`explorer` shows."""
    n_points = checks.integer("n_points", n_points, minimum=2)
    side = torch.logspace(-3, 0, n_points)
    alphas = torch.cat([-side.flip(0), torch.zeros(1), side])
    g = weights.gradient(model, x, y)
    out = {"alpha": alphas.numpy()}
    for name, d in directions.items():
        loss = weights.loss_surface(model, x, y, [d], alphas[:, None])[0].numpy()
        first, second = curvature.quadratic_terms(model, x, y, d, grad_at_theta=g)
        base = loss[n_points]
        out[name] = (loss, base + alphas.numpy() * first + alphas.numpy() ** 2 * second)
    return out


def explorer(grid: dict, key: str) -> explorers.Explorer:
    """Chapter 3: choose a zoom; see the loss along random and adversarial weight directions within it, and
    the second-order prediction (from :func:`slice_grid`)."""
    alpha, names = grid["alpha"], [k for k in grid if k != "alpha"]
    zooms = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01]

    def panel(ax: plt.Axes, zoom: float) -> None:
        inside = np.abs(alpha) <= zoom
        for i, name in enumerate(names):
            measured, quadratic = grid[name]
            ax.plot(alpha[inside], measured[inside], "-", color=f"C{i}", label=f"{name}: measured")
            ax.plot(alpha[inside], quadratic[inside], "--", color=f"C{i}", label=f"{name}: second order")
        ax.set(xlabel=r"step $\alpha$ along the direction", ylabel="test loss", title=f"{key}: |α| ≤ {zoom:g}")
        ax.legend(fontsize="x-small")

    def draw(axes, zoom: float) -> None:
        panel(axes[0], zoom)
        inside = np.abs(alpha) <= zoom
        for i, name in enumerate(names):
            measured, quadratic = grid[name]
            axes[1].plot(alpha[inside], measured[inside] - quadratic[inside], color=f"C{i}", label=name)
        axes[1].set(xlabel=r"step $\alpha$", ylabel="measured − second order", title="what the quadratic misses")
        axes[1].legend(fontsize="small")

    static = lambda: explorers.small_multiples([1.0, 0.1, 0.01], panel, title="loss along two weight directions",
                                               ncols=3)
    return explorers.Explorer({"zoom": explorers.slider(zooms, 1.0, "zoom: |α| ≤")}, draw, static)
