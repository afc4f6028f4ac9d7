"""Weight directions: random ones (Gaussian, rescaled per filter or per layer), the adversarial one (gradient
ascent on the loss inside a per-layer or global ball), and the size at which the adversary halves accuracy.
Each is a direction (:mod:`utils.weights`), applied with ``weights.applied`` or ``weights.perturbed``.
"""

from __future__ import annotations

import torch
from torch import nn

from . import checks, config
from .outputs import evaluate
from .weights import Direction, check_data, flatten, gradient_function, parameters_of, perturbed

NORMALIZATIONS = ("filter", "layer", "none")


def random_direction(
    model: nn.Module, *, normalization: str = "filter", generator: torch.Generator | None = None
) -> Direction:
    """A Gaussian direction d ~ N(0, I), drawn on the generator's device. ``filter``: each output filter/row
    dᵢ of a weight tensor rescaled to ‖dᵢ‖ = ‖θᵢ‖ (Li et al., 2018); ``layer``: each weight tensor to
    ‖d_l‖ = ‖θ_l‖. Both set the entries of 1-D parameters (biases, normalization) to 0. ``none``: raw
    N(0, I) on every parameter."""
    checks.one_of("normalization", normalization, NORMALIZATIONS)
    params = parameters_of(model)
    gen = config.resolve_generator(generator, checks.model_device(model))
    out = {}
    for name, p in params.items():
        d = torch.randn(p.shape, generator=gen, device=gen.device, dtype=p.dtype).to(p.device)
        if normalization != "none" and p.dim() < 2:
            d = torch.zeros_like(p)
        elif normalization == "filter":
            d = d * (p.flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1)).view(-1, *[1] * (p.dim() - 1))
        elif normalization == "layer":
            d = d * p.norm() / d.norm()
        out[name] = d
    return out


def _rescale(v: Direction, relative: bool, reference: Direction) -> Direction:
    """Scale v to the unit of its ball: per weight tensor ‖v_l‖ = ‖θ_l‖ (1-D parameters zero) when
    ``relative``, else ‖v‖ = 1 over all parameters."""
    if relative:
        return {n: (t * reference[n].norm() / t.norm().clamp_min(1e-30)) if t.dim() >= 2 else torch.zeros_like(t)
                for n, t in v.items()}
    total = flatten(v).norm().clamp_min(1e-30)
    return {n: t / total for n, t in v.items()}


def _project_weights(v: Direction, eps: float, relative: bool, reference: Direction) -> Direction:
    """The nearest point of the ball: ‖v_l‖ ≤ ε‖θ_l‖ per weight tensor (``relative``), else ‖v‖ ≤ ε."""
    if relative:
        return {n: t * torch.clamp(eps * reference[n].norm() / t.norm().clamp_min(1e-30), max=1.0)
                for n, t in v.items()}
    shrink = torch.clamp(eps / flatten(v).norm().clamp_min(1e-30), max=1.0)
    return {n: t * shrink for n, t in v.items()}


def adversarial_direction(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, relative: bool = True, steps: int = 5
) -> Direction:
    """Adversarial weight perturbation (as in AWP, Wu et al. 2020): gradient ascent on L over (x, y) from θ,
    v ← Π(v + α·ĝ) with α = 2.5·ε/steps. ``relative``: ĝ_l = g_l·‖θ_l‖/‖g_l‖ per weight tensor and the
    ball ‖v_l‖ ≤ ε‖θ_l‖ (1-D parameters fixed); else ĝ = g/‖g‖ and the ball ‖v‖ ≤ ε over all parameters.
    Returned in the ball's unit (:func:`_rescale`), so ``perturbed(model, d, eps)`` applies the attack and
    has the same per-layer norms as a ``layer``-normalized random direction. Fit it on one split and score
    it on another to measure an adversary that does not know the test data."""
    eps, steps = checks.positive("eps", eps), checks.integer("steps", steps)
    relative = checks.flag("relative", relative)
    theta, gradient_at = parameters_of(model), gradient_function(model, x, y)
    v = {n: torch.zeros_like(p) for n, p in theta.items()}
    for _ in range(steps):
        step = _rescale(gradient_at({n: theta[n] + v[n] for n in theta}), relative, theta)
        v = _project_weights({n: v[n] + 2.5 * eps / steps * step[n] for n in v}, eps, relative, theta)
    return _rescale(v, relative, theta)


def halving_size(
    model: nn.Module, x_fit: torch.Tensor, y_fit: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
    low: float = 1e-3, high: float = 1.0, n_bisect: int = 12,
) -> float:
    """The smallest relative size s = ‖δ_l‖/‖θ_l‖ at which the per-layer adversarial weight direction, fit on
    (x_fit, y_fit), brings the accuracy on (x, y) to 50% or below: geometric bisection on [low, high]
    (``high`` if even that size does not halve it)."""
    low, high = checks.positive("low", low), checks.positive("high", high)
    if low >= high:
        raise ValueError(f"low must be below high, got low = {low} and high = {high}")
    n_bisect = checks.integer("n_bisect", n_bisect)
    check_data(model, x, y)
    checks.batch(x_fit, y_fit, x_name="x_fit", y_name="y_fit")
    checks.labels("y_fit", y_fit, len(x_fit), checks.classes(model, x_fit))

    def halves(s: float) -> bool:
        with perturbed(model, adversarial_direction(model, x_fit, y_fit, eps=s), s):
            return evaluate(model, x, y) <= 0.5

    if not halves(high):
        return high
    for _ in range(n_bisect):
        mid = (low * high) ** 0.5
        low, high = (low, mid) if halves(mid) else (mid, high)
    return high
