"""Decision-boundary geometry: logit margins, distances to the boundary along given directions, and the
exact distance for linear classifiers (the figure of decision regions is chapter 1's,
:func:`utils.chapters.ch01_decision_boundaries.plot_decision_boundary`).

A point x with prediction ŷ = argmax_k f(x)_k is flipped by a step t·u (‖u‖₂ = 1) when
argmax_k f(x + t u)_k ≠ ŷ. :func:`distance_along` finds the smallest such t for many points and many
directions at once (a scan on a geometric grid, then bisection), with one batched forward pass per step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats
from torch import nn

from . import checks, config
from .budgets import sample_sphere
from .outputs import logits, predict_unchecked


def margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Logit margin per sample.

    Without ``y``: z₍₁₎ − z₍₂₎, the gap between the two largest logits (≥ 0, zero on the boundary).
    With ``y``: z_y − max_{k≠y} z_k, negative for a misclassified sample.
    """
    checks.batch(x)
    z = logits(model, x)
    if y is not None:
        checks.labels("y", y, len(x), z.shape[1])
    return logit_margin(z, y)


def logit_margin(z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`margin` from logits ``z`` of shape ``(N, K)`` already computed (differentiable)."""
    checks.tensor("z", z, min_dim=2, finite=False)
    if z.dim() != 2 or z.shape[1] < 2:
        raise ValueError(f"z must have at least 2 classes (logits shaped (N, K), K >= 2), got {tuple(z.shape)}")
    if y is not None:
        checks.labels("y", y, len(z), z.shape[1])
    if y is None:
        top2 = z.topk(2, dim=1).values
        return top2[:, 0] - top2[:, 1]
    y = y.to(z.device)
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return true - others


def margin_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """∇ₓ (z_ŷ − z_r) per sample, where ŷ and r are the top two classes at x: the local normal of the
    nearest boundary between them (exactly normal for a linear model)."""
    checks.model("model", model)
    checks.batch(x)
    checks.accepts(model, x)
    with checks.eval_mode(model):
        xd = x.detach().to(checks.model_device(model)).requires_grad_(True)
        z = model(xd)
        top2 = z.topk(2, dim=1).indices
        gap = z.gather(1, top2[:, :1]) - z.gather(1, top2[:, 1:])
        (grad,) = torch.autograd.grad(gap.sum(), xd)
    return grad.to(x.device)


def distance_along(
    model: nn.Module,
    x: torch.Tensor,
    directions: torch.Tensor,
    *,
    max_radius: float = 10.0,
    min_radius: float = 1e-4,
    n_scan: int = 64,
    n_bisect: int = 24,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Smallest t ∈ (0, max_radius] with argmax f(x + t·u) ≠ argmax f(x), u = d/‖d‖₂, for every sample and
    direction; ``inf`` where the ray does not flip within ``max_radius``.

    ``directions`` is shaped like ``x`` (one direction per sample → result ``(N,)``) or
    ``(N, K, *x.shape[1:])`` (K per sample → ``(N, K)``). The first flip is bracketed on the geometric grid
    tⱼ = min_radius·(max_radius/min_radius)^{j/(n_scan−1)} and then bisected ``n_bisect`` times, so the
    result is within (grid ratio − 1)·t / 2^n_bisect above the first crossing the grid sees.
    """
    checks.model("model", model)
    checks.batch(x)
    checks.accepts(model, x)
    checks.tensor("directions", directions)
    max_radius = checks.positive("max_radius", max_radius)
    min_radius = checks.number("min_radius", min_radius, low=0.0, high=max_radius, low_open=True, high_open=True)
    n_scan, n_bisect = checks.integer("n_scan", n_scan, minimum=2), checks.integer("n_bisect", n_bisect, minimum=0)
    batch_size = config.batch("rays") if batch_size is None else checks.integer("batch_size", batch_size)
    directions = directions.to(x.device)
    per_sample = directions.shape == x.shape
    if not per_sample and (directions.dim() != x.dim() + 1 or directions.shape[0] != x.shape[0]
                           or directions.shape[2:] != x.shape[1:]):
        raise ValueError(
            f"directions must be shaped like x {tuple(x.shape)} or (N, K, *x.shape[1:]); got {tuple(directions.shape)}"
        )
    dirs = directions if not per_sample else directions[:, None]
    k = dirs.shape[1]
    norms = dirs.flatten(2).norm(dim=2)
    if (norms == 0).any():
        raise ValueError("directions must be non-zero vectors (a zero direction has no line to walk)")
    u = (dirs / norms.view(*norms.shape, *[1] * (dirs.dim() - 2))).flatten(0, 1)
    origin = x.repeat_interleave(k, dim=0)
    label = predict_unchecked(model, x, batch_size).repeat_interleave(k)
    bcast = (-1, *[1] * (x.dim() - 1))

    def flips(rows: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # inputs checked above: the unchecked kernel
        return predict_unchecked(model, origin[rows] + t.view(bcast) * u[rows], batch_size) != label[rows]

    grid = torch.logspace(math.log10(min_radius), math.log10(max_radius), n_scan, dtype=x.dtype, device=x.device)
    hi = torch.full((len(u),), math.inf, dtype=x.dtype, device=x.device)
    lo = torch.zeros(len(u), dtype=x.dtype, device=x.device)
    for j, t in enumerate(grid):
        rows = torch.isinf(hi).nonzero().squeeze(1)
        if len(rows) == 0:
            break
        hit = rows[flips(rows, t.expand(len(rows)))]
        hi[hit], lo[hit] = t, (grid[j - 1] if j > 0 else 0.0)
    rows = torch.isfinite(hi).nonzero().squeeze(1)
    a, b = lo[rows], hi[rows]
    for _ in range(n_bisect if len(rows) else 0):
        mid = (a + b) / 2
        hit = flips(rows, mid)
        a, b = torch.where(hit, a, mid), torch.where(hit, mid, b)
    hi[rows] = b
    out = hi.view(len(x), k)
    return out[:, 0] if per_sample else out


def line_distance(model: nn.Module, x: torch.Tensor, directions: torch.Tensor, **kwargs) -> torch.Tensor:
    """Distance to the boundary along the line through x in direction ±u: min(distance_along(u),
    distance_along(−u)). Same shapes and keywords as :func:`distance_along`."""
    checks.batch(x)
    checks.tensor("directions", directions)
    per_sample = directions.shape == x.shape
    both = torch.stack([directions, -directions], dim=1) if per_sample else torch.cat([directions, -directions], 1)
    d = distance_along(model, x, both, **kwargs)
    return d.amin(dim=1) if per_sample else torch.minimum(*d.chunk(2, dim=1))


def flat_boundary_ratio(dim: int, q: float = 0.5) -> float:
    """Quantile ``q`` of r_random / r_min for a flat boundary in ℝ^dim.

    Along a uniformly random line the boundary is met at r_min/|cos θ|, where cos²θ ~ Beta(½, (dim−1)/2)
    (≈ χ²₁/dim for large dim); so the ratio's quantile is 1/√(Beta⁻¹(1 − q)), which grows like √dim.
    """
    dim = checks.integer("dim", dim, minimum=2)
    q = checks.number("q", q, low=0.0, high=1.0, low_open=True, high_open=True)
    return float(1 / np.sqrt(stats.beta.ppf(1 - q, 0.5, (dim - 1) / 2)))


def flat_boundary_flip_probability(dim: int, t: float | np.ndarray) -> np.ndarray:
    """Probability that a step of length t·r in a uniformly random direction crosses a flat boundary at
    distance r in ℝ^dim: P(cos θ ≥ 1/t) = ½·(1 − I_{1/t²}(½, (dim−1)/2)) for t ≥ 1 (I the regularized
    incomplete Beta function), and 0 for t < 1."""
    dim = checks.integer("dim", dim, minimum=2)
    try:
        t = np.asarray(t, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"t must be a number or an array of numbers, got {t!r}") from None
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"t must be finite and >= 0, got {t}")
    with np.errstate(divide="ignore"):
        p = 0.5 * stats.beta.sf(1 / np.maximum(t, 1) ** 2, 0.5, (dim - 1) / 2)
    return np.where(t >= 1, p, 0.0)


def normal_and_random_radii(
    model: nn.Module, x: torch.Tensor, n_directions: int, *, generator: torch.Generator | None = None,
    descent: torch.Tensor | None = None, **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per point: r_normal, the distance along the descent direction −∇ₓ(z₍₁₎ − z₍₂₎) (the linearized
    shortest way to the boundary, shape ``(N,)``; pass ``descent`` if it is already computed), and the
    distances along ``n_directions`` uniformly random lines through it (shape ``(N, n_directions)``).
    r_normal is ``inf`` at a point where the margin's gradient is zero (no normal to walk along). Keywords
    go to :func:`distance_along`."""
    n_directions = checks.integer("n_directions", n_directions)
    checks.batch(x)
    if descent is not None:
        checks.tensor("descent", descent, shape=tuple(x.shape))
        if (descent.flatten(1).norm(dim=1) == 0).any():
            raise ValueError("descent must be non-zero in every row (a zero direction has no line to walk)")
    descent = -margin_gradient(model, x) if descent is None else descent
    moving = descent.flatten(1).norm(dim=1) > 0
    r_normal = torch.full((len(x),), math.inf, dtype=x.dtype, device=x.device)
    if moving.any():
        r_normal[moving] = distance_along(model, x[moving], descent[moving], **kwargs)
    dirs = sample_sphere(len(x) * n_directions, tuple(x.shape[1:]), generator=generator).to(x.device)
    return r_normal, line_distance(model, x, dirs.view(len(x), n_directions, *x.shape[1:]), **kwargs)


def linear_boundary(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, b) of a two-class linear model in input coordinates: f(x)₁ − f(x)₀ = wᵀx + b, with the model's
    normalization folded in (w = (W₁ − W₀)/σ, b = b₁ − b₀ − wᵀμ)."""
    layers = [m for m in getattr(model, "layers", ()) if isinstance(m, nn.Linear)]  # a utils.models.MLP's
    if len(layers) != 1 or layers[0].out_features != 2 or not hasattr(model, "normalize"):
        raise ValueError("model must be a two-class linear MLP (hidden=() and num_classes=2) for linear_boundary")
    lin, norm = layers[0], model.normalize
    with torch.no_grad():
        w = (lin.weight[1] - lin.weight[0]) / norm.std.flatten().expand(lin.in_features)
        b = lin.bias[1] - lin.bias[0] - (w * norm.mean.flatten().expand(lin.in_features)).sum()
    return w.clone(), b.clone()


def hyperplane_distance(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """Euclidean distance from each row of x to the hyperplane {z : wᵀz + b = 0}: |wᵀx + b| / ‖w‖₂."""
    checks.tensor("x", x)
    checks.tensor("w", w)
    if isinstance(b, torch.Tensor) and b.numel() != 1:
        raise TypeError(f"b must be a real number or a one-element tensor, got shape {tuple(b.shape)}")
    if not (isinstance(b, torch.Tensor) and b.is_floating_point() and torch.isfinite(b).all()):
        b = checks.number("b", b)
    if x.dim() != 2 or w.dim() != 1 or x.shape[1] != w.shape[0]:
        raise ValueError(f"need x shaped (N, D) and w shaped (D,), got {tuple(x.shape)} and {tuple(w.shape)}")
    if not w.any():
        raise ValueError("w must be non-zero (a zero normal defines no hyperplane)")
    return (x @ w + b).abs() / w.norm()
