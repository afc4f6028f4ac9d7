"""Chapter 1, decision-boundary geometry: the figure of decision regions, the dimension sweep (the same 2-D
problem embedded in ℝ^d, one model per d, the minimal and random-direction distances to its boundary) and
the chapter's explorer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from .. import checks, config, explorers, plotting
from ..data import Dataset, embed
from ..geometry import flat_boundary_ratio, margin, margin_gradient, normal_and_random_radii
from ..models import MLP
from ..noise import random_flip_fraction
from ..outputs import evaluate, predict
from ..train import fit


def plot_decision_boundary(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    ax: plt.Axes | None = None,
    shade: str = "class",
    resolution: int = 250,
    title: str | None = None,
) -> plt.Axes:
    """Decision regions of a model on 2-D inputs, its boundary (black line) and the data points.

    ``shade="class"`` colours each region by its predicted class; ``shade="margin"`` shows the logit
    margin z₍₁₎ − z₍₂₎ instead (dark near the boundary).
    """
    checks.batch(x, y)
    if x.shape[1] != 2:
        raise ValueError(f"x must hold 2-D points to plot decision regions, got {x.shape[1]}-D inputs")
    checks.one_of("shade", shade, ("class", "margin"))
    resolution = checks.integer("resolution", resolution, minimum=2)
    ax = ax or plt.subplots()[1]
    lo, hi = x.min(0).values - 0.05, x.max(0).values + 0.05
    g0, g1 = (torch.linspace(lo[i].item(), hi[i].item(), resolution) for i in range(2))
    grid = torch.cartesian_prod(g0, g1)
    cls = predict(model, grid).view(resolution, resolution).T.numpy()
    xs, ys = g0.numpy(), g1.numpy()
    k = int(max(cls.max(), y.max().item())) + 1
    if shade == "class":
        ax.contourf(xs, ys, cls, levels=np.arange(k + 1) - 0.5, colors=plotting.class_colors(k), alpha=0.25)
    else:
        m = margin(model, grid).view(resolution, resolution).T.numpy()
        im = ax.pcolormesh(xs, ys, m, cmap="magma", shading="auto")
        plt.colorbar(im, ax=ax, label="logit margin $z_{(1)} - z_{(2)}$")
    ax.contour(xs, ys, cls, levels=np.arange(k - 1) + 0.5, colors="black", linewidths=1.2)
    ax.scatter(*x.T.numpy(), c=[plotting.class_colors(k)[i] for i in y.tolist()], s=8, edgecolors="white",
               linewidths=0.3)
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title, aspect="equal")
    return ax


def dimension_sweep(
    data: Dataset,
    dims: Sequence[int],
    *,
    n_points: int = 150,
    n_directions: int = 32,
    eps: float = 0.1,
    hidden: tuple[int, ...] = (64, 64),
    **kwargs,
) -> list[dict[str, float]]:
    """For each dim: embed the 2-D ``data`` in ℝ^dim (:func:`data.embed`), train an MLP there (Adam,
    100 epochs; initial weights and data order from the book's seed), and measure on ``n_points`` test
    points the minimal radius r_min (along the descent direction of the margin), the ratio r_random/r_min
    over ``n_directions`` random lines (median, and the flat-boundary prediction
    :func:`geometry.flat_boundary_ratio`), and the flip rates of steps of length ``eps`` along the descent
    direction and along random directions; ``ratios`` holds every r_random/r_min (inf where a line met no
    boundary). Points whose r_min
    is not found (inf) are left out. Keywords go to :func:`geometry.distance_along`."""
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or not dims:
        raise ValueError(f"dims must be a non-empty list of integers >= 2, got {dims!r}")
    dims = [checks.integer(f"dims[{i}]", d, minimum=2) for i, d in enumerate(dims)]
    n_points, n_directions = checks.integer("n_points", n_points), checks.integer("n_directions", n_directions)
    eps = checks.positive("eps", eps)
    rows, dev = [], config.device()
    for dim in dims:
        emb = embed(data, dim).to(dev)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.derived_seed("dimension sweep init", dim))
            model = MLP(dim, hidden, data.num_classes)
        fit(model, emb, epochs=100, lr=1e-2, batch_size=100, progress=False, device=dev,
            generator=config.generator("dimension sweep fit", dim, device=dev))
        x = emb.x_test[:n_points]
        gen = config.generator("dimension sweep directions", dim, device=dev)
        normal = -margin_gradient(model, x)
        r_min, r_random = normal_and_random_radii(model, x, n_directions, generator=gen, descent=normal, **kwargs)
        ok = torch.isfinite(r_min)
        unit_normal = normal / normal.norm(dim=1, keepdim=True)
        ratios = r_random[ok] / r_min[ok, None]
        rows.append({
            "dim": dim,
            "test_accuracy": evaluate(model, emb.x_test, emb.y_test),
            "median_r_min": r_min[ok].median().item(),
            "median_ratio": ratios.median().item(),
            "flat_prediction": flat_boundary_ratio(dim),
            "flip_rate_normal": (predict(model, x + eps * unit_normal) != predict(model, x)).float().mean().item(),
            "flip_rate_random": random_flip_fraction(model, x, eps, n_directions, generator=gen).mean().item(),
            "points_used": int(ok.sum()),
            "ratios": ratios.flatten().cpu().numpy(),
        })
    return rows


def explorer(sweep: pd.DataFrame, eps: float) -> explorers.Explorer:
    """Chapter 1: choose the dimension d; see the distances along random lines in units of the shortest one
    (:func:`dimension_sweep`'s ``ratios``) against the flat-boundary law, and the flip rates of a
    step of ``eps`` along the normal and in random directions."""
    dims = [int(d) for d in sweep["dim"]]
    rows = {int(r["dim"]): r for _, r in sweep.iterrows()}

    def histogram(ax: plt.Axes, d: int) -> None:
        ratios = rows[d]["ratios"]
        ratios = np.log10(ratios[np.isfinite(ratios)])  # lines that never met a boundary are left out
        ax.hist(ratios, bins=40, density=True, alpha=0.6, label="measured", histtype="stepfilled")
        grid = np.linspace(0, max(ratios.max(), 0.5), 200)  # log10 ratio; the law of 1/|cos θ|, cos²θ ~ Beta
        b = 10 ** (-2 * grid)
        ax.plot(grid, stats.beta.pdf(b, 0.5, (d - 1) / 2) * 2 * np.log(10) * b, "k--", label="flat boundary")
        ax.axvline(np.log10(rows[d]["median_ratio"]), color="C0", lw=1)
        ax.set(xlabel=r"$\log_{10}(r_{random} / r_{min})$", ylabel="density", title=f"d = {d}")
        ax.legend(fontsize="small")

    def draw(axes, d: int) -> None:
        histogram(axes[0], d)
        axes[1].semilogx(dims, sweep["flip_rate_normal"], "o-", label=f"step of {eps} along the normal")
        axes[1].semilogx(dims, sweep["flip_rate_random"], "s-", label=f"random step of {eps}")
        axes[1].axvline(d, color="k", lw=1, ls=":")
        axes[1].set(xlabel="input dimension $d$", ylabel="fraction of points flipped", ylim=(-0.02, 1))
        axes[1].legend(fontsize="small")

    picks = sorted({dims[0], dims[len(dims) // 3], dims[2 * len(dims) // 3], dims[-1]})
    static = lambda: explorers.small_multiples(picks, histogram, title="random-line distance / shortest distance")
    return explorers.Explorer({"d": explorers.slider(dims, dims[-1], "dimension d")}, draw, static)
