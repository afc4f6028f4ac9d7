"""Chapter 3, weight-space perturbations: the models it studies, the loss slices its explorer redraws, and the
width sweep that tests H3 (families of networks that differ only in width, trained to the same loss)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import checks, config, curvature, directions, explorers, weights
from ..data import Dataset
from ..geometry import margin
from ..outputs import evaluate, hooked_forward_unchecked, mean_loss
from ..ptq import quantize_weights
from ..setups import WEIGHT_SPACE, Setup
from ..stats import power_law_fit
from ..train import Recipe, pretrained

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


@dataclass(frozen=True)
class Family:
    """Networks of one architecture that differ only in width: ``model`` ("mlp" or "cnn") with ``depth`` hidden
    layers of each width (an MLP) or with each width as its first convolution's channels (the CNN)."""

    model: str
    depth: int
    widths: tuple[int, ...]

    def build(self, width: int) -> dict:
        """The keywords of :func:`train.pretrained` for one width."""
        if self.model == "mlp":
            return {"hidden": (width,) * self.depth}
        return {"recipe": replace(WIDTH_RECIPE, width=width)}


FAMILIES = {
    "small": {"MLP, 1 hidden layer": Family("mlp", 1, (16, 32, 64, 128, 256, 512, 1024)),
              "MLP, 2 hidden layers": Family("mlp", 2, (16, 32, 64, 128, 256, 512)),
              "CNN, channels": Family("cnn", 2, (4, 8, 16, 32, 64))},
    "full": {"MLP, 1 hidden layer": Family("mlp", 1, (64, 256, 1024, 4096)),
             "MLP, 2 hidden layers": Family("mlp", 2, (64, 256, 1024)),
             "CNN, channels": Family("cnn", 2, (8, 16, 32, 64))},
}
"""The width sweep of §3.5 (H3), by scale: three families, on the data set of :data:`WIDTHS`."""
WIDTH_RECIPE = Recipe(epochs=300, lr=1e-3, batch_size=64, target_loss=0.01)
"""Every width is trained with Adam until its mean training loss is at most 0.01 (at most 300 epochs), so that
narrow and wide networks are compared at the same training loss rather than after the same number of steps."""


def alignment(model: nn.Module, x: torch.Tensor) -> list[dict[str, float]]:
    """For each linear and convolution layer: its fan-in n and the median over inputs (and positions) of the
    alignment A = √n‖Wh‖ / (‖W‖_F‖h‖) of its weights W with its input h. Noise δW with i.i.d. entries and
    ‖δW‖_F = s‖W‖_F changes the layer's output by ‖δW h‖ ≈ s‖W‖_F‖h‖/√n, so the relative change is s/A: A = 1
    for weights unrelated to their inputs, and A grows like √n when the trained weights add their inputs
    coherently while the noise adds them incoherently."""
    checks.model("model", model)
    checks.batch(x)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    seen: dict[nn.Module, torch.Tensor] = {}
    hooked_forward_unchecked(model, x, [m.register_forward_hook(lambda mod, inp, out: seen.__setitem__(
        mod, inp[0].detach())) for m in layers])
    rows = []
    for m in layers:
        w, h = m.weight.detach(), seen[m]
        if isinstance(m, nn.Conv2d):  # one input vector per output position: the unfolded patches
            h = F.unfold(h, m.kernel_size, padding=m.padding, stride=m.stride).transpose(1, 2).flatten(0, 1)
            w = w.flatten(1)
        signal, size = (h @ w.T).norm(dim=1), w.norm() * h.norm(dim=1)
        keep = size > 1e-6 * size.max()
        a = (w.shape[1] ** 0.5 * signal[keep] / size[keep]).median().item()
        rows.append({"fan-in": w.shape[1], "alignment": a})
    return rows


def width_sweep(family: Family, data: Dataset, seed: int, x: torch.Tensor, y: torch.Tensor, *,
                size: float = 0.5, bits: Sequence[int] = (4, 3, 2), n_draws: int = 16) -> list[dict[str, float]]:
    """For every width of ``family`` trained on ``data`` with ``seed`` (:data:`WIDTH_RECIPE`, cached): the
    training loss reached, test accuracy and median logit margin on (x, y), the accuracy lost to random
    layer-normalized weight noise of relative size ``size`` (mean of ``n_draws`` directions), to round-to-nearest
    at each of ``bits`` (per channel), the outlier ratio max|w|/std of the read-out layer's rows, and every
    layer's fan-in and alignment (:func:`alignment`)."""
    rows = []
    for width in family.widths:
        model = pretrained(family.model, data.name, data=data, seed=seed, progress=False,
                           **{"recipe": WIDTH_RECIPE, **family.build(width)}).to(x.device)
        base = evaluate(model, x, y)
        gen = config.generator("width noise", family.model, family.depth, width, seed=seed, device=x.device)
        dirs = [directions.random_direction(model, normalization="layer", generator=gen) for _ in range(n_draws)]
        noisy = weights.loss_surface(model, x, y, dirs, size * torch.eye(n_draws))[1].mean().item()
        readout = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].weight.detach()
        fans = alignment(model, x)
        rows.append({"seed": seed, "width": width, "training loss": mean_loss(model, data.x_train.to(x.device),
                                                                               data.y_train.to(x.device)),
                     "accuracy": base, "median margin": margin(model, x).median().item(),
                     "noise drop": base - noisy,
                     **{f"{b}-bit drop": base - evaluate(quantize_weights(model, b), x, y) for b in bits},
                     "read-out max|w|/std": (readout.abs().amax(1) / readout.std(1)).mean().item(),
                     "fan-ins": tuple(r["fan-in"] for r in fans), "alignments": tuple(r["alignment"] for r in fans)})
    return rows


def alignment_slopes(rows: Sequence[dict]) -> list[dict[str, float]]:
    """For each layer whose fan-in changes with the width, and each seed: the log-log slope of its alignment
    against its fan-in over the widths of :func:`width_sweep`'s ``rows`` (½ if the signal adds coherently and
    the noise does not; 0 if both add alike)."""
    out = []
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        for layer in range(len(mine[0]["fan-ins"])):
            fans = [r["fan-ins"][layer] for r in mine]
            if len(set(fans)) > 1:
                a = [r["alignments"][layer] for r in mine]
                out.append({"seed": seed, "layer": layer, "slope": power_law_fit(fans, a)[0]})
    return out
